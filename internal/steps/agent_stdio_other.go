//go:build !linux

package steps

import (
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
	"github.com/routines-dev/routines/internal/stepkind"
)

// mcpCommand refuses the stdio server of s: it would run in the sandbox,
// which needs Linux.
func mcpCommand(*stepkind.Execution, routine.AgentMCPServer) (mcp.Transport, error) {
	return nil, sandbox.Supported()
}
