package engine_test

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is this module's path: imports under it are read from the source
// tree, others end the walk.
const module = "github.com/routines-dev/routines"

// heavy are the import paths (and the trees under them) the engine must
// not reach: the step kinds, whose SDKs a server or worker that only
// schedules should not carry, the CLI and the SQLite driver above it, and
// the SDKs themselves, should a package the engine uses import one. Of
// OpenTelemetry the engine uses the trace API (interfaces, a no-op, the
// W3C ids, attribute and status types: nine small packages), never the
// SDK, its exporters or their protobuf and gRPC, which internal/tracing
// holds.
var heavy = []string{
	module + "/internal/steps",
	module + "/internal/cli",
	module + "/internal/server",
	module + "/internal/store/sqlite",
	module + "/internal/tracing",
	"github.com/anthropics",
	"github.com/modelcontextprotocol",
	"github.com/jackc/pgx",
	"go.opentelemetry.io/otel/sdk",
	"go.opentelemetry.io/otel/exporters",
	"go.opentelemetry.io/proto",
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"github.com/slack-go",
	"github.com/emersion",
	"github.com/aws",
	"github.com/hashicorp",
	"modernc.org",
}

// closure returns the imports reachable from the module package pkg
// (without tests), each with the module package that imports it. Only the
// module's own packages are followed, from source with go/build, so the
// walk is fast and needs no go command; a heavy import would be caught
// where a module package makes it.
func closure(t *testing.T, ctx build.Context, root, pkg string) map[string]string {
	t.Helper()
	seen := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		bp, err := ctx.ImportDir(filepath.Join(root, strings.TrimPrefix(p, module)), 0)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, imp := range bp.Imports {
			if _, ok := seen[imp]; ok {
				continue
			}
			seen[imp] = p
			if imp == module || strings.HasPrefix(imp, module+"/") {
				queue = append(queue, imp)
			}
		}
	}
	return seen
}

// heavyIn lists the heavy imports of a closure as "import (by importer)".
func heavyIn(deps map[string]string) []string {
	var found []string
	for imp, by := range deps {
		for _, h := range heavy {
			if imp == h || strings.HasPrefix(imp, h+"/") {
				found = append(found, imp+" (by "+by+")")
				break
			}
		}
	}
	slices.Sort(found)
	return found
}

// TestEngineImportsNoStepKinds guards the seam of internal/stepkind: the
// engine knows step kinds through that contract alone, so neither the
// kinds nor their SDKs are in its import closure, on any platform.
func TestEngineImportsNoStepKinds(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if mod, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.HasPrefix(string(mod), "module "+module+"\n") {
		t.Fatalf("%s is not the root of %s (go.mod: %v)", root, module, err)
	}
	for _, goos := range []string{"linux", "darwin", "windows"} {
		ctx := build.Default
		ctx.GOOS = goos
		// The walk must see heavy imports where they are: the step kinds
		// reach the Anthropic SDK.
		if got := heavyIn(closure(t, ctx, root, module+"/internal/steps")); !slices.ContainsFunc(got, func(s string) bool {
			return strings.HasPrefix(s, "github.com/anthropics")
		}) {
			t.Fatalf("GOOS=%s: the walk finds no Anthropic SDK under internal/steps (found %v); it cannot judge the engine", goos, got)
		}
		if got := heavyIn(closure(t, ctx, root, module+"/internal/engine")); len(got) > 0 {
			t.Errorf("GOOS=%s: the engine imports %s; depend on internal/stepkind and let main register the kinds", goos, strings.Join(got, ", "))
		}
	}
}
