// Command routines is the single binary of Routines: it builds the
// registries (step kinds, trigger kinds, secret providers, store and
// artifact store drivers) and hands them to the command line.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/artifacts/s3"
	"github.com/routines-dev/routines/internal/cli"
	"github.com/routines-dev/routines/internal/secrets"
	"github.com/routines-dev/routines/internal/secrets/awssm"
	"github.com/routines-dev/routines/internal/secrets/vault"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/steps"
	"github.com/routines-dev/routines/internal/store"
	"github.com/routines-dev/routines/internal/store/postgres"
	"github.com/routines-dev/routines/internal/trigger"
)

// version is set at build time with -ldflags "-X main.version=…"; when it
// is not, --version shows the module version of the build info.
var version string

func main() {
	os.Exit(cli.Run(context.Background(), deps(), os.Args[1:]))
}

// deps are what the command line is given: the registries, the process's
// streams and what the build recorded.
func deps() cli.Deps {
	kinds := stepkind.NewRegistry(steps.RunKind{}, steps.StateKind{}, steps.EmitKind{}, steps.SQLKind{}, steps.SlackKind{}, steps.HTTPKind{}, steps.RoutineKind{}, steps.EmailKind{}, steps.LLMKind{}, steps.ClassifyKind{}, steps.AgentKind{})
	return cli.Deps{
		Kinds:           kinds,
		Triggers:        trigger.Builtin(),
		Stores:          store.Drivers{"postgres": postgres.OpenURL, "postgresql": postgres.OpenURL},
		Artifacts:       artifacts.Drivers{"s3": s3.OpenURL},
		SecretProviders: secretProviders,
		Stdout:          os.Stdout,
		Stderr:          os.Stderr,
		Version:         version,
		Build:           buildInfo(),
	}
}

// buildInfo is what the Go toolchain recorded in the binary: the module
// version and the VCS revision it was built from.
func buildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// secretProviders are the providers beyond the builtin vault and the
// environment, configured from the environment (docs/secrets-providers.md).
// Neither touches the network before its first secret.
func secretProviders(getenv func(string) string) ([]secrets.Provider, error) {
	v, err := vault.New(vault.ConfigFromEnv(getenv))
	if err != nil {
		return nil, fmt.Errorf("vault secrets provider: %w", err)
	}
	a, err := awssm.New(awssm.ConfigFromEnv(getenv))
	if err != nil {
		return nil, fmt.Errorf("aws secrets provider: %w", err)
	}
	return []secrets.Provider{v, a}, nil
}
