// Command routines is the single binary of Routines: it builds the
// registries (step kinds today; triggers and secret providers as they
// land) and hands them to the command line.
package main

import (
	"context"
	"os"

	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/steps"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	kinds := steps.NewRegistry(steps.RunKind{}, steps.StateKind{}, steps.EmitKind{}, steps.SQLKind{})
	os.Exit(cli.Run(context.Background(), cli.Deps{
		Kinds:   kinds,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Version: version,
	}, os.Args[1:]))
}
