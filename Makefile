# Shortcuts; each target is one plain go command.
.PHONY: build test bench fuzz

build:
	go build -trimpath -ldflags="-s -w" -o routines ./cmd/routines

test:
	go test -race -count=1 ./...

bench:
	go run ./bench

fuzz:
	go test ./internal/spec -run '^$$' -fuzz FuzzParse -fuzztime 30s
	go test ./internal/template -run '^$$' -fuzz FuzzParseRender -fuzztime 30s
	go test ./internal/template -run '^$$' -fuzz FuzzRenderRunLine -fuzztime 30s
	go test ./internal/trigger -run '^$$' -fuzz FuzzParseMail -fuzztime 30s
	go test ./internal/trigger -run '^$$' -fuzz FuzzVerifySlack -fuzztime 30s
	go test ./internal/steps -run '^$$' -fuzz FuzzSplitSQL -fuzztime 30s
