//go:build !linux

package steps

import (
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/sandbox"
)

// mcpCommand refuses the stdio server of s: it would run in the sandbox,
// which needs Linux.
func mcpCommand(*Execution, routine.AgentMCPServer) (mcp.Transport, error) {
	return nil, sandbox.Supported()
}
