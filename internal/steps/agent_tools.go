package steps

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
)

// toolbox holds the tools of an agent step and the MCP sessions behind
// them.
type toolbox struct {
	tools   []*agentTool
	byName  map[string]*agentTool
	closers []func()
}

// openToolbox connects to the step's MCP servers, lists their tools and
// adds the step kinds of tools:. A server that cannot be reached or
// listed fails the step, retryably; one the step describes wrongly fails
// it for good. The toolbox must be closed, also after an error.
func openToolbox(ctx context.Context, x *stepkind.Execution, a *routine.AgentAction) (*toolbox, error) {
	b := &toolbox{byName: map[string]*agentTool{}}
	for _, s := range a.MCP {
		session, done, err := connectMCP(ctx, x, s)
		if err != nil {
			return b, err
		}
		b.closers = append(b.closers, done)
		for tool, err := range session.Tools(ctx, nil) {
			if err != nil {
				return b, &stepkind.Error{Retryable: true, Err: fmt.Errorf("agent: mcp server %s: list its tools: %w", s.Name, err)}
			}
			if err := b.add(mcpTool(s.Name, session, tool)); err != nil {
				return b, err
			}
		}
	}
	for _, kind := range a.Tools {
		switch kind {
		case "http":
			if err := b.add(httpTool(x)); err != nil {
				return b, err
			}
		default:
			return b, stepkind.Fail("", false, fmt.Errorf("agent: tools: step kind %q cannot be a tool (those that can: %s)", kind, strings.Join(routine.AgentTools, ", ")))
		}
	}
	return b, nil
}

func (b *toolbox) add(t *agentTool) error {
	if b.byName[t.name] != nil {
		return stepkind.Fail("", false, fmt.Errorf("agent: two tools are named %s: give the MCP servers other names", t.name))
	}
	b.tools = append(b.tools, t)
	b.byName[t.name] = t
	return nil
}

func (b *toolbox) names() []string {
	names := make([]string, len(b.tools))
	for i, t := range b.tools {
		names[i] = t.name
	}
	return names
}

// close ends the MCP sessions, in reverse order.
func (b *toolbox) close() {
	for _, c := range slices.Backward(b.closers) {
		c()
	}
}

// maxToolName is the longest tool name both providers take.
const maxToolName = 64

// toolNameChars are the characters providers refuse in a tool name.
var toolNameChars = regexp.MustCompile(`[^a-zA-Z0-9_-]`)

// mcpTool offers a tool of an MCP server to the model as
// <server>__<tool>.
func mcpTool(server string, session *mcp.ClientSession, tool *mcp.Tool) *agentTool {
	name := toolNameChars.ReplaceAllString(server+"__"+tool.Name, "_")
	if len(name) > maxToolName {
		name = name[:maxToolName]
	}
	schema, _ := tool.InputSchema.(map[string]any)
	if schema == nil {
		schema = map[string]any{"type": "object"}
	}
	return &agentTool{
		name:        name,
		description: tool.Description,
		schema:      schema,
		call: func(ctx context.Context, input json.RawMessage) (string, bool, error) {
			res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tool.Name, Arguments: input})
			if err != nil {
				// An error the server answered (unknown tool, invalid
				// arguments) is the model's to see; a lost connection
				// fails the step.
				var we *jsonrpc.Error
				if errors.As(err, &we) {
					return we.Message, true, nil
				}
				if ctx.Err() != nil {
					return "", false, ctx.Err()
				}
				return "", false, &stepkind.Error{Retryable: true, Err: fmt.Errorf("agent: mcp server %s: call %s: %w", server, tool.Name, err)}
			}
			return mcpResultText(res), res.IsError, nil
		},
	}
}

// mcpResultText is the result of an MCP tool call as text for the model:
// its text contents, a note for each other content, or its structured
// content as JSON when it has no content.
func mcpResultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			parts = append(parts, c.Text)
		case *mcp.ImageContent:
			parts = append(parts, fmt.Sprintf("(an image, %s, %s)", c.MIMEType, httpByteCount(len(c.Data))))
		case *mcp.AudioContent:
			parts = append(parts, fmt.Sprintf("(audio, %s, %s)", c.MIMEType, httpByteCount(len(c.Data))))
		case *mcp.ResourceLink:
			parts = append(parts, fmt.Sprintf("(a resource: %s)", c.URI))
		case *mcp.EmbeddedResource:
			if r := c.Resource; r != nil && r.Text != "" {
				parts = append(parts, r.Text)
			} else if r != nil {
				parts = append(parts, fmt.Sprintf("(a resource: %s, %s)", r.URI, r.MIMEType))
			}
		}
	}
	if len(parts) == 0 && res.StructuredContent != nil {
		if data, err := json.Marshal(res.StructuredContent); err == nil {
			return string(data)
		}
	}
	return strings.Join(parts, "\n")
}

// connectMCP opens a session with one MCP server of the step, and returns
// what ends it. The server's failures to answer are retryable; a server
// the step describes wrongly is not.
func connectMCP(ctx context.Context, x *stepkind.Execution, s routine.AgentMCPServer) (*mcp.ClientSession, func(), error) {
	var t mcp.Transport
	cleanup := func() {}
	switch {
	case len(s.Command) > 0:
		c, err := mcpCommand(x, s)
		if err != nil {
			return nil, nil, stepkind.Fail("", false, fmt.Errorf("agent: mcp server %s: %w", s.Name, err))
		}
		t = c
	default:
		if !x.Permissions.NetworkAllowed() {
			return nil, nil, stepkind.Fail("", false, fmt.Errorf("agent: mcp server %s: the routine sets permissions.network: false, so its steps may not use the network", s.Name))
		}
		u, err := routine.CheckHTTPURL(s.URL)
		if err != nil {
			return nil, nil, stepkind.Fail("", false, fmt.Errorf("agent: mcp server %s: url %w", s.Name, err))
		}
		for name, value := range s.Headers {
			if err := routine.CheckHTTPHeader(name, value); err != nil {
				return nil, nil, stepkind.Fail("", false, fmt.Errorf("agent: mcp server %s: %w", s.Name, err))
			}
		}
		transport := newHTTPTransport()
		cleanup = transport.CloseIdleConnections
		t = &mcp.StreamableClientTransport{
			Endpoint:   u.String(),
			HTTPClient: &http.Client{Transport: headerTransport{base: meteredTransport{base: transport}, headers: s.Headers}},
			// The engine retries the step; the session need not.
			MaxRetries: -1,
			// Only answers to the step's own calls are needed.
			DisableStandaloneSSE: true,
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "routines", Version: "1"}, nil)
	session, err := client.Connect(ctx, t, nil)
	if err != nil {
		cleanup()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, &stepkind.Error{Retryable: true, Err: fmt.Errorf("agent: mcp server %s: connect: %w", s.Name, err)}
	}
	return session, func() { _ = session.Close(); cleanup() }, nil
}

// headerTransport adds the step's headers to every request to an MCP
// server.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(h.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range h.headers {
			r.Header.Set(k, v)
		}
	}
	return h.base.RoundTrip(r)
}

// agentHTTPInput is the input of the http tool: the request fields of an
// http step.
type agentHTTPInput struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Query   map[string]string `json:"query"`
	JSON    any               `json:"json"`
	Body    string            `json:"body"`
	Form    map[string]string `json:"form"`
}

// httpToolSchema is the input schema of the http tool.
var httpToolSchema = map[string]any{
	"type":                 "object",
	"required":             []any{"url"},
	"additionalProperties": false,
	"properties": map[string]any{
		"method":  map[string]any{"type": "string", "enum": routine.HTTPMethods, "description": "The method (default GET)."},
		"url":     map[string]any{"type": "string", "description": "The http:// or https:// address to call."},
		"headers": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "Request headers."},
		"query":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "Query parameters added to the URL."},
		"json":    map[string]any{"description": "A body sent as JSON. One of json, body and form."},
		"body":    map[string]any{"type": "string", "description": "A body sent as text. One of json, body and form."},
		"form":    map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "A body sent as a form. One of json, body and form."},
	},
}

// httpTool offers the http step kind to the model: its input is the
// request, its result the status and body, whatever the status. It runs
// as an http step of the routine would, with its permissions.
func httpTool(x *stepkind.Execution) *agentTool {
	return &agentTool{
		name:        "http",
		description: "Send one HTTP request and get its status and body (up to 1 MiB).",
		schema:      httpToolSchema,
		call: func(ctx context.Context, input json.RawMessage) (string, bool, error) {
			var in agentHTTPInput
			dec := json.NewDecoder(bytes.NewReader(input))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return "the input is not a request: " + err.Error(), true, nil
			}
			never := []string{}
			hx := *x
			hx.Action = &routine.Action{HTTP: &routine.HTTPAction{
				Method: in.Method, URL: in.URL, Headers: in.Headers, Query: in.Query,
				JSON: in.JSON, Body: in.Body, Form: in.Form, FailOn: &never,
			}}
			hx.Stdout, hx.Stderr = io.Discard, io.Discard
			res, err := HTTPKind{}.Execute(ctx, &hx)
			if err != nil {
				if ctx.Err() != nil {
					return "", false, ctx.Err()
				}
				return err.Error(), true, nil
			}
			status, _ := strconv.Atoi(res.Outputs["status"].(string))
			body := res.Outputs["body"].(string)
			if res.Outputs["body_encoding"] == "base64" {
				raw, _ := base64.StdEncoding.DecodeString(body)
				body = fmt.Sprintf("(%s of binary data)", httpByteCount(len(raw)))
			}
			data, err := json.Marshal(struct {
				Status    int    `json:"status"`
				Body      string `json:"body"`
				Truncated bool   `json:"truncated,omitempty"`
			}{status, body, res.Outputs["body_truncated"] == "true"})
			if err != nil {
				return "", false, fmt.Errorf("agent: http tool: encode the result: %w", err)
			}
			return string(data), false, nil
		},
	}
}
