package spec

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/template"
)

// secretOnly matches a value that is one secret reference, {{NAME}}: the
// only form the daemon resolves for a signing secret.
var secretOnly = regexp.MustCompile(`^\{\{\s*([A-Z][A-Z0-9_]*)\s*\}\}$`)

// slack checks a slack: action: a token that comes from a secret (a token
// written in the file would be in every copy of it), a channel, and text or
// blocks. Blocks are Block Kit: a list of mappings, each with its type; the
// fields of each type are Slack's to check. Templates are checked with the
// others.
func (v *validator) slack(p string, a *routine.SlackAction) {
	switch {
	case strings.TrimSpace(a.Token) == "":
		v.errorf(p+".token", "%s needs token: the bot token, as a secret reference such as \"{{SLACK_BOT_TOKEN}}\"", human(p))
	case !namesSecret(a.Token):
		v.errorf(p+".token", "%s.token must come from a secret, not be written in the file: declare one (secrets: [SLACK_BOT_TOKEN]) and write token: \"{{SLACK_BOT_TOKEN}}\"", human(p))
	}
	if strings.TrimSpace(a.Channel) == "" {
		v.errorf(p+".channel", "%s needs channel: a channel name such as \"#support\" or an id such as C0123456789", human(p))
	}
	if strings.TrimSpace(a.Text) == "" && a.Blocks == nil {
		// At text, so that a misspelled text: is reported alone.
		v.errorf(p+".text", "%s needs text or blocks: the message to post", human(p))
	}
	if a.Blocks != nil {
		v.slackBlocks(p+".blocks", a.Blocks)
	}
	if u := a.BaseURL; u != "" && !strings.Contains(u, "{{") {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			v.errorf(p+".base_url", "%s.base_url must be an http:// or https:// URL, got %q", human(p), u)
		}
	}
}

// slackBlocks checks that blocks is a list of mappings with a type.
func (v *validator) slackBlocks(p string, blocks any) {
	list, ok := blocks.([]any)
	if !ok {
		v.errorf(p, "%s must be a list of Block Kit blocks, such as [{type: section, text: {type: mrkdwn, text: \"…\"}}]", human(p))
		return
	}
	for i, b := range list {
		bp := p + "[" + strconv.Itoa(i) + "]"
		m, ok := b.(map[string]any)
		if !ok {
			v.errorf(bp, "%s must be a mapping: a Block Kit block with its type", human(bp))
			continue
		}
		if t, _ := m["type"].(string); strings.TrimSpace(t) == "" {
			v.errorf(bp, "%s needs type: the kind of block, such as section, header, divider or context", human(bp))
		}
	}
}

// namesSecret reports whether the template s uses a {{NAME}}: a secret
// (or, if the name is undeclared, what the reference check reports).
func namesSecret(s string) bool {
	t, err := template.Parse(s)
	if err != nil {
		return true // the template check reports it
	}
	for _, ref := range t.Refs() {
		if ref.Root == template.RootNamed {
			return true
		}
	}
	return false
}

// slackCommand checks a slack_command: trigger: a command that starts
// with / and no other trigger of the routine claims, a signing secret
// that is a declared secret, and a reply that uses no secret (Slack shows
// it to the user). Two routines with the same command are refused when
// the daemon loads them.
func (v *validator) slackCommand(p string, t *routine.SlackCommandTrigger, sc *scope) {
	cmd := t.Command
	switch {
	case strings.TrimSpace(cmd) == "":
		v.errorf(p+".command", "slack_command.command is required, such as /triage")
	case !strings.HasPrefix(cmd, "/") || len(cmd) < 2 || strings.ContainsAny(cmd, " \t\n{}"):
		v.errorf(p+".command", "slack_command.command must be / and a name without spaces, such as /triage, got %q", cmd)
	default:
		for i := range v.r.Triggers {
			o := v.r.Triggers[i].SlackCommand
			if o == t {
				break
			}
			if o != nil && o.Command == cmd {
				v.errorf(p+".command", "slack_command %s is already a trigger of this routine (triggers[%d])", cmd, i)
				break
			}
		}
	}
	switch m := secretOnly.FindStringSubmatch(t.SigningSecret); {
	case strings.TrimSpace(t.SigningSecret) == "":
		v.errorf(p+".signing_secret", "slack_command.signing_secret is required: the Slack app's signing secret, as a secret reference such as \"{{SLACK_SIGNING_SECRET}}\"")
	case m == nil:
		v.errorf(p+".signing_secret", "slack_command.signing_secret must be one secret reference, such as \"{{SLACK_SIGNING_SECRET}}\" with SLACK_SIGNING_SECRET under secrets:, not written in the file")
	case !v.declaredSecret(m[1]):
		v.errorf(p+".signing_secret", "slack_command.signing_secret: %s is not a declared secret: %s", m[1], v.undeclared(m[1], nil))
	}
	v.template(p+".reply", t.Reply, sc)
	if strings.Contains(t.Reply, "{{") && namesSecret(t.Reply) {
		v.errorf(p+".reply", "slack_command.reply is shown in Slack: it may use event, env and routine, not a {{NAME}}")
	}
}
