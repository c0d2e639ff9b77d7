package spec

import (
	"slices"
	"strings"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/suggest"
)

var mailTLSModes = []string{routine.MailTLSStartTLS, routine.MailTLSImplicit, routine.MailTLSNone}

// emailStep checks an email: action: a server, a sender, at least one
// recipient and a subject. Its templates are checked with the others.
func (v *validator) emailStep(p string, a *routine.EmailAction) {
	v.mailServer(p+".smtp", "smtp", &a.SMTP, true)
	if strings.TrimSpace(a.From) == "" {
		v.required(p, "from", "the sender, such as \"Support <support@example.com>\"")
	}
	if len(a.To) == 0 {
		v.required(p, "to", "a list of at least one recipient")
	}
	if strings.TrimSpace(a.Subject) == "" {
		v.required(p, "subject", "the subject line")
	}
}

// emailTrigger checks an email: trigger. Nothing of it is rendered: the
// daemon resolves its username and password when they are one secret
// reference, and uses every other value as written.
func (v *validator) emailTrigger(p string, t *routine.EmailTrigger, sc *scope) {
	if t.IMAP == nil {
		v.errorf(p, "%s needs imap: the server and account to watch, such as { host: imap.gmail.com, port: 993, username: support@example.com, password: \"{{IMAP_PASSWORD}}\" }", human(p))
	} else {
		sp := p + ".imap"
		v.mailServer(sp, "imap", t.IMAP, false)
		if strings.Contains(t.IMAP.Host, "{{") {
			v.errorf(sp+".host", "%s.host is not templated: write the host name", human(sp))
		}
		if strings.TrimSpace(t.IMAP.Username) == "" {
			v.required(sp, "username", "the login of the mailbox's account")
		} else if strings.Contains(t.IMAP.Username, "{{") && secretOnly.FindStringSubmatch(t.IMAP.Username) == nil {
			v.errorf(sp+".username", "%s.username is a name, or one secret reference such as \"{{IMAP_USER}}\"", human(sp))
		}
		if strings.TrimSpace(t.IMAP.Password) == "" {
			v.required(sp, "password", "a secret reference such as \"{{IMAP_PASSWORD}}\"")
		}
		v.template(sp+".username", t.IMAP.Username, sc)
	}
	if v.given(p+".mailbox") && strings.TrimSpace(t.Mailbox) == "" {
		v.errorf(p+".mailbox", "%s.mailbox is empty: name a mailbox, or leave it out for %s", human(p), routine.DefaultMailbox)
	}
	if v.given(p+".poll") && t.Poll.D() < time.Second {
		v.errorf(p+".poll", "%s.poll must be at least 1s, got %s", human(p), t.Poll.D())
	}
	if t.Mark != "" && t.Mark != routine.EmailMarkSeen {
		v.errorf(p+".mark", "%s.mark must be %s, got %q", human(p), routine.EmailMarkSeen, t.Mark)
	}
	switch {
	case t.Mark != "" && t.MoveTo != "":
		v.keyErrorf(p+".move_to", "%s has mark and move_to: a message is either flagged or moved; choose one", human(p))
	case v.given(p+".move_to") && strings.TrimSpace(t.MoveTo) == "":
		v.errorf(p+".move_to", "%s.move_to is empty: name the mailbox to move messages to", human(p))
	case t.MoveTo != "" && t.MoveTo == cmpOrString(t.Mailbox, routine.DefaultMailbox):
		v.errorf(p+".move_to", "%s.move_to is the mailbox it watches, %s: name another one", human(p), t.MoveTo)
	}
}

func cmpOrString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// required reports a missing or empty key of the mapping at p.
func (v *validator) required(p, key, what string) {
	if v.given(p + "." + key) {
		v.errorf(p+"."+key, "%s.%s is empty: write %s", human(p), key, what)
	} else {
		v.errorf(p, "%s needs %s: %s", human(p), key, what)
	}
}

// mailServer checks the smtp: or imap: mapping at p. A password must be
// one secret reference to a declared secret: a password written in the
// file would be in every copy of it. templated says the engine renders the
// mapping (a step's), whose references the template checks report.
func (v *validator) mailServer(p, what string, m *routine.MailServer, templated bool) {
	if strings.TrimSpace(m.Host) == "" {
		v.required(p, "host", "the server's host name, such as "+what+".gmail.com")
	}
	if v.given(p+".port") && (m.Port < 1 || m.Port > 65535) {
		v.errorf(p+".port", "%s.port must be 1 to 65535, got %d", human(p), m.Port)
	}
	if m.TLS != "" && !slices.Contains(mailTLSModes, m.TLS) {
		v.errorf(p+".tls", "%s.tls must be one of %s, got %q%s", human(p), strings.Join(mailTLSModes, ", "), m.TLS, suggest.DidYouMean(m.TLS, mailTLSModes))
	}
	if m.TLS == routine.MailTLSNone && m.Host != "" && !(templated && strings.Contains(m.Host, "{{")) && !routine.IsLoopbackHost(m.Host) {
		v.errorf(p+".tls", "%s.tls none sends the password and the mail in clear, so it is only allowed for a server on this machine (localhost, 127.0.0.1, ::1), not %s: use starttls or tls", human(p), m.Host)
	}
	if m.Password == "" {
		return
	}
	switch sm := secretOnly.FindStringSubmatch(m.Password); {
	case sm == nil:
		v.errorf(p+".password", "%s.password must be one secret reference, such as \"{{%s_PASSWORD}}\" with %s_PASSWORD under secrets:, not written in the file", human(p), strings.ToUpper(what), strings.ToUpper(what))
	case !templated && !v.declaredSecret(sm[1]):
		v.errorf(p+".password", "%s.password: %s is not a declared secret: add it to secrets:", human(p), sm[1])
	}
}
