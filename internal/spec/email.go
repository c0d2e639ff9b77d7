package spec

import (
	"net/url"
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
// daemon resolves its credentials when they are one secret reference, and
// uses every other value as written.
func (v *validator) emailTrigger(p string, t *routine.EmailTrigger, sc *scope) {
	switch {
	case t.IMAP != nil && t.Gmail != nil:
		v.keyErrorf(p+".gmail", "%s has imap and gmail: a trigger reads one mailbox, over IMAP or through the Gmail API; choose one", human(p))
	case t.IMAP == nil && t.Gmail == nil:
		v.errorf(p, "%s needs imap: the server and account to watch, such as { host: imap.gmail.com, port: 993, username: support@example.com, password: \"{{IMAP_PASSWORD}}\" }, or gmail: an account reached through the Gmail API", human(p))
	}
	if t.Gmail != nil {
		v.gmailTrigger(p, t, sc)
	} else if v.given(p + ".label") {
		v.keyErrorf(p+".label", "%s.label is for gmail: over IMAP a Gmail label is a mailbox of its name: write mailbox: instead", human(p))
	}
	if t.IMAP != nil {
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
	if v.given(p+".poll") && t.Poll.D() < time.Second {
		v.errorf(p+".poll", "%s.poll must be at least 1s, got %s", human(p), t.Poll.D())
	}
	if t.Mark != "" && t.Mark != routine.EmailMarkSeen {
		v.errorf(p+".mark", "%s.mark must be %s, got %q", human(p), routine.EmailMarkSeen, t.Mark)
	}
	switch {
	case t.Gmail != nil:
		// mailbox and move_to are reported by gmailTrigger.
	case v.given(p+".mailbox") && strings.TrimSpace(t.Mailbox) == "":
		v.errorf(p+".mailbox", "%s.mailbox is empty: name a mailbox, or leave it out for %s", human(p), routine.DefaultMailbox)
	}
	switch {
	case t.Gmail != nil:
	case t.Mark != "" && t.MoveTo != "":
		v.keyErrorf(p+".move_to", "%s has mark and move_to: a message is either flagged or moved; choose one", human(p))
	case v.given(p+".move_to") && strings.TrimSpace(t.MoveTo) == "":
		v.errorf(p+".move_to", "%s.move_to is empty: name the mailbox to move messages to", human(p))
	case t.MoveTo != "" && t.MoveTo == cmpOrString(t.Mailbox, routine.DefaultMailbox):
		v.errorf(p+".move_to", "%s.move_to is the mailbox it watches, %s: name another one", human(p), t.MoveTo)
	}
}

// gmailTrigger checks the gmail: account of an email trigger at p and its
// label; mailbox and move_to are IMAP's.
func (v *validator) gmailTrigger(p string, t *routine.EmailTrigger, sc *scope) {
	sp, g := p+".gmail", t.Gmail
	if strings.TrimSpace(g.ClientID) == "" {
		v.required(sp, "client_id", "the OAuth client ID, such as 1234-abc.apps.googleusercontent.com")
	} else if strings.Contains(g.ClientID, "{{") && secretOnly.FindStringSubmatch(g.ClientID) == nil {
		v.errorf(sp+".client_id", "%s.client_id is an ID, or one secret reference such as \"{{GMAIL_CLIENT_ID}}\"", human(sp))
	}
	v.template(sp+".client_id", g.ClientID, sc)
	v.secretField(sp, "client_secret", g.ClientSecret, "GMAIL_CLIENT_SECRET")
	v.secretField(sp, "refresh_token", g.RefreshToken, "GMAIL_REFRESH_TOKEN")
	if v.given(sp+".user") && strings.TrimSpace(g.User) == "" {
		v.errorf(sp+".user", "%s.user is empty: write an address of the account, or leave it out for %s", human(sp), routine.DefaultGmailUser)
	} else if strings.Contains(g.User, "{{") {
		v.errorf(sp+".user", "%s.user is not templated: write the account's address, or me", human(sp))
	}
	v.apiURL(sp+".base_url", g.BaseURL)
	v.apiURL(sp+".token_url", g.TokenURL)
	if strings.TrimSpace(t.Label) == "" {
		v.required(p, "label", "the name of the Gmail label to watch, such as INBOX or support")
	}
	if v.given(p + ".mailbox") {
		v.keyErrorf(p+".mailbox", "%s.mailbox is for imap: with gmail, name the label to watch with label:", human(p))
	}
	if v.given(p + ".move_to") {
		v.keyErrorf(p+".move_to", "%s.move_to is for imap: with gmail, use mark: seen, or let a Gmail filter file the mail", human(p))
	}
}

// secretField checks a credential of the mapping at p that must be one
// reference to a declared secret: written in the file, it would be in
// every copy of it.
func (v *validator) secretField(p, key, value, example string) {
	switch sm := secretOnly.FindStringSubmatch(value); {
	case strings.TrimSpace(value) == "":
		v.required(p, key, "a secret reference such as \"{{"+example+"}}\"")
	case sm == nil:
		v.errorf(p+"."+key, "%s.%s must be one secret reference, such as \"{{%s}}\" with %s under secrets:, not written in the file", human(p), key, example, example)
	case !v.declaredSecret(sm[1]):
		v.errorf(p+"."+key, "%s.%s: %s is not a declared secret: %s", human(p), key, sm[1], v.undeclared(sm[1], nil))
	}
}

// apiURL checks an optional endpoint URL of a trigger: absolute, and
// https unless its host is this machine, since credentials cross it.
func (v *validator) apiURL(p, u string) {
	if !v.given(p) {
		return
	}
	pu, err := url.Parse(u)
	switch {
	case strings.Contains(u, "{{"):
		v.errorf(p, "%s is not templated: write the URL", human(p))
	case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
		v.errorf(p, "%s must be an http(s) URL, got %q", human(p), u)
	case pu.Scheme == "http" && !routine.IsLoopbackHost(pu.Hostname()):
		v.errorf(p, "%s is http: credentials would cross the network in clear, so http is only allowed for this machine (localhost, 127.0.0.1, ::1), not %s: use https", human(p), pu.Hostname())
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
		v.errorf(p+".password", "%s.password: %s is not a declared secret: %s", human(p), sm[1], v.undeclared(sm[1], nil))
	}
}
