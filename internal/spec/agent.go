package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

// mcpNamePattern is what an MCP server's name may be: the prefix of its
// tools' names, which providers limit to letters, digits, _ and -.
var mcpNamePattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// agent checks an agent: action: its model settings as those of an llm
// step, max_turns in range, MCP servers with a unique name and exactly
// one of url (http or https) and command, and tools from the allow-list of
// step kinds.
func (v *validator) agent(p string, a *routine.AgentAction) {
	v.llm(p, a.LLM())
	if v.given(p+".max_turns") && (a.MaxTurns < 1 || a.MaxTurns > routine.MaxAgentMaxTurns) {
		v.errorf(p+".max_turns", "%s.max_turns must be between 1 and %d, got %d", human(p), routine.MaxAgentMaxTurns, a.MaxTurns)
	}
	names := map[string]bool{}
	for i, s := range a.MCP {
		sp := fmt.Sprintf("%s.mcp[%d]", p, i)
		switch {
		case s.Name == "":
			v.errorf(sp, "%s needs name: the prefix of its tools, such as logs", human(sp))
		case !mcpNamePattern.MatchString(s.Name):
			v.errorf(sp+".name", "%s.name %q must be lower-case letters, digits, _ and -", human(sp), s.Name)
		case names[s.Name]:
			v.errorf(sp+".name", "%s.name %q is used by another server of this step: each needs its own", human(sp), s.Name)
		}
		names[s.Name] = true
		switch {
		case v.given(sp+".url") && v.given(sp+".command"):
			v.errorf(sp, "%s has url and command: an MCP server is reached at a url or started as a command, not both", human(sp))
		case strings.TrimSpace(s.URL) == "" && len(s.Command) == 0:
			v.errorf(sp, "%s needs url (a streamable HTTP endpoint, such as http://127.0.0.1:8931/mcp) or command (a program speaking MCP over stdio)", human(sp))
		case len(s.Command) > 0:
			if strings.TrimSpace(s.Command[0]) == "" {
				v.errorf(sp+".command[0]", "%s.command starts with an empty program", human(sp))
			}
			if len(s.Headers) > 0 {
				v.keyErrorf(sp+".headers", "%s.headers only apply to a server reached at a url", human(sp))
			}
		case strings.Contains(s.URL, "{{"):
			if err := routine.CheckHTTPURLPrefix(s.URL); err != nil {
				v.errorf(sp+".url", "%s.url %v", human(sp), err)
			}
		default:
			if _, err := routine.CheckHTTPURL(s.URL); err != nil {
				v.errorf(sp+".url", "%s.url %v", human(sp), err)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(s.Headers)) {
			value := s.Headers[name]
			if strings.Contains(value, "{{") {
				value = "" // checked once rendered
			}
			if err := routine.CheckHTTPHeader(name, value); err != nil {
				v.keyErrorf(sp+".headers."+name, "%s.headers: %v", human(sp), err)
			}
		}
	}
	seen := map[string]bool{}
	for i, t := range a.Tools {
		tp := fmt.Sprintf("%s.tools[%d]", p, i)
		switch {
		case slices.Contains(routine.AgentTools, t) && seen[t]:
			v.errorf(tp, "%s: %s is listed twice", human(tp), t)
		case slices.Contains(routine.AgentTools, t):
		case slices.Contains(stepKinds, t):
			v.errorf(tp, "%s: step kind %s cannot be an agent's tool; the kinds that can: %s", human(tp), t, strings.Join(routine.AgentTools, ", "))
		default:
			v.errorf(tp, "%s: %q is not a step kind an agent can call (those that can: %s)%s", human(tp), t, strings.Join(routine.AgentTools, ", "), suggest.DidYouMean(t, routine.AgentTools))
		}
		seen[t] = true
	}
}
