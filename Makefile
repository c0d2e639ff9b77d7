# Shortcuts; each target is plain go commands.
.PHONY: build test cross bench fuzz

build:
	go build -trimpath -ldflags="-s -w" -o routines ./cmd/routines

test:
	go test -race -count=1 ./...

# The systems besides Linux that the binary builds for (docs/platforms.md):
# every package builds, and go vet type-checks the tests too.
cross:
	CGO_ENABLED=0 GOOS=darwin GOARCH=amd64 go build ./...
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 go build ./...
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go build ./...
	CGO_ENABLED=0 GOOS=darwin GOARCH=amd64 go vet ./...
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go vet ./...

bench:
	go run ./bench

fuzz:
	go test ./internal/spec -run '^$$' -fuzz FuzzParse -fuzztime 30s
	go test ./internal/template -run '^$$' -fuzz FuzzParseRender -fuzztime 30s
	go test ./internal/template -run '^$$' -fuzz FuzzRenderRunLine -fuzztime 30s
	go test ./internal/trigger -run '^$$' -fuzz FuzzParseMail -fuzztime 30s
	go test ./internal/trigger -run '^$$' -fuzz FuzzVerifySlack -fuzztime 30s
	go test ./internal/steps -run '^$$' -fuzz FuzzSplitSQL -fuzztime 30s
	go test ./internal/bundle -run '^$$' -fuzz FuzzExtract -fuzztime 30s
