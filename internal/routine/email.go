package routine

import (
	"strconv"
	"strings"
	"time"
)

// EmailAction sends one message over SMTP. Every string is a template; the
// password is written as a secret reference such as {{SMTP_PASSWORD}}.
type EmailAction struct {
	SMTP      MailServer `yaml:"smtp" json:"smtp" jsonschema:"required,description=The SMTP server that accepts the message (submission: port 587 with STARTTLS\\, or 465 with TLS)."`
	From      string     `yaml:"from" json:"from" jsonschema:"required,description=The sender\\, such as Support <support@example.com>; its domain names the Message-ID."`
	To        []string   `yaml:"to" json:"to" jsonschema:"required,minItems=1,description=Recipients (addresses\\, or Name <address>)."`
	Cc        []string   `yaml:"cc,omitempty" json:"cc,omitempty" jsonschema:"description=Copy recipients\\, listed in the Cc header."`
	Bcc       []string   `yaml:"bcc,omitempty" json:"bcc,omitempty" jsonschema:"description=Blind copy recipients: on the envelope only\\, in no header."`
	Subject   string     `yaml:"subject" json:"subject" jsonschema:"required,description=The subject; non-ASCII text is sent as RFC 2047 encoded words."`
	Body      string     `yaml:"body,omitempty" json:"body,omitempty" jsonschema:"description=The text/plain body\\, UTF-8."`
	HTML      string     `yaml:"html,omitempty" json:"html,omitempty" jsonschema:"description=An HTML body; with body the message is multipart/alternative."`
	InReplyTo string     `yaml:"in_reply_to,omitempty" json:"in_reply_to,omitempty" jsonschema:"description=Message-ID this message answers (such as {{ event.message_id }}): sets In-Reply-To and References\\, so mail clients thread it."`
}

// MailServer is how an email step or trigger reaches its server.
type MailServer struct {
	Host     string `yaml:"host" json:"host" jsonschema:"required,description=Host name of the server\\, such as smtp.gmail.com or imap.gmail.com."`
	Port     int    `yaml:"port,omitempty" json:"port,omitempty" jsonschema:"minimum=1,maximum=65535,description=TCP port (default: 465 or 993 with tls: tls\\, 587 or 143 with starttls\\, 25 or 143 with none)."`
	TLS      string `yaml:"tls,omitempty" json:"tls,omitempty" template:"-" jsonschema:"enum=starttls,enum=tls,enum=none,description=starttls (default; tls by default on ports 465 and 993)\\, tls (TLS from the first byte) or none (loopback hosts only)."`
	Username string `yaml:"username,omitempty" json:"username,omitempty" jsonschema:"description=Login name; without it an SMTP server is used without AUTH."`
	Password string `yaml:"password,omitempty" json:"password,omitempty" jsonschema:"description=Password (for Gmail an app password); write it as a secret reference such as {{SMTP_PASSWORD}}."`
}

// The values of MailServer.TLS.
const (
	MailTLSStartTLS = "starttls"
	MailTLSImplicit = "tls"
	MailTLSNone     = "none"
)

// TLSMode returns the TLS of the server as configured or by default:
// tls on the implicit-TLS ports (465 SMTP, 993 IMAP), else starttls.
func (m *MailServer) TLSMode() string {
	if m.TLS != "" {
		return m.TLS
	}
	if m.Port == 465 || m.Port == 993 {
		return MailTLSImplicit
	}
	return MailTLSStartTLS
}

// IsLoopbackHost reports whether host names this machine's loopback
// interface (localhost, 127.0.0.0/8, ::1), the only hosts a mail server
// may be reached without TLS on: anywhere else the password would cross
// the network in clear.
func IsLoopbackHost(host string) bool {
	h := strings.ToLower(strings.Trim(host, "[]"))
	switch {
	case h == "localhost", h == "::1", strings.HasSuffix(h, ".localhost"):
		return true
	case strings.HasPrefix(h, "127."):
		parts := strings.Split(h, ".")
		if len(parts) != 4 {
			return false
		}
		for _, p := range parts {
			if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
				return false
			}
		}
		return true
	}
	return false
}

// EmailTrigger starts a run for each new message of a mailbox: an IMAP
// mailbox, or a label of a Gmail account read through the Gmail API.
type EmailTrigger struct {
	IMAP    *MailServer `yaml:"imap,omitempty" json:"imap,omitempty" jsonschema:"description=The IMAP server and account to watch (Gmail: imap.gmail.com\\, port 993\\, an app password)."`
	Gmail   *GmailAPI   `yaml:"gmail,omitempty" json:"gmail,omitempty" jsonschema:"description=A Gmail account to watch through the Gmail API with an OAuth client and a refresh token (instead of imap)."`
	Label   string      `yaml:"label,omitempty" json:"label,omitempty" jsonschema:"description=With gmail: the name of the label to watch\\, such as INBOX or support (required with gmail)."`
	Mailbox string      `yaml:"mailbox,omitempty" json:"mailbox,omitempty" jsonschema:"description=With imap: the mailbox to watch (default INBOX); a Gmail label is a mailbox of that name."`
	Poll    Duration    `yaml:"poll,omitempty" json:"poll,omitempty" jsonschema:"description=How often to look for new mail when the IMAP server has no IDLE\\, and how often to ask the Gmail API (default 30s\\, at least 1s)."`
	Mark    string      `yaml:"mark,omitempty" json:"mark,omitempty" jsonschema:"enum=seen,description=seen: flag each message \\Seen once its run is queued (with gmail: remove its UNREAD label)."`
	MoveTo  string      `yaml:"move_to,omitempty" json:"move_to,omitempty" jsonschema:"description=With imap: move each message to this mailbox once its run is queued."`
}

// GmailAPI is how an email trigger reaches a Gmail account: an OAuth
// client and a refresh token the account's owner granted it. The client
// secret and the refresh token are secret references such as
// {{GMAIL_REFRESH_TOKEN}}; nothing else is a template.
type GmailAPI struct {
	ClientID     string `yaml:"client_id" json:"client_id" jsonschema:"required,description=The OAuth client ID\\, such as 1234-abc.apps.googleusercontent.com (or one reference such as {{GMAIL_CLIENT_ID}})."`
	ClientSecret string `yaml:"client_secret" json:"client_secret" jsonschema:"required,description=The OAuth client secret\\, as a secret reference such as {{GMAIL_CLIENT_SECRET}}."`
	RefreshToken string `yaml:"refresh_token" json:"refresh_token" jsonschema:"required,description=A refresh token of the account for the client with the gmail.modify scope (gmail.readonly without mark)\\, as a secret reference such as {{GMAIL_REFRESH_TOKEN}}."`
	User         string `yaml:"user,omitempty" json:"user,omitempty" jsonschema:"description=The account: me (the default) is the one that granted the refresh token."`
	BaseURL      string `yaml:"base_url,omitempty" json:"base_url,omitempty" jsonschema:"description=The Gmail API endpoint (default https://gmail.googleapis.com/); http only on a loopback host\\, for tests."`
	TokenURL     string `yaml:"token_url,omitempty" json:"token_url,omitempty" jsonschema:"description=The OAuth2 token endpoint (default https://oauth2.googleapis.com/token); http only on a loopback host\\, for tests."`
}

// Defaults of GmailAPI.
const (
	DefaultGmailUser     = "me"
	DefaultGmailBaseURL  = "https://gmail.googleapis.com/"
	DefaultGmailTokenURL = "https://oauth2.googleapis.com/token"
)

// DefaultMailbox is the mailbox of an email trigger that names none.
const DefaultMailbox = "INBOX"

// DefaultEmailPoll is how often an email trigger without poll: looks for
// new mail when the server has no IDLE.
const DefaultEmailPoll = Duration(30 * time.Second)

// EmailMarkSeen is the value of EmailTrigger.Mark that flags messages \Seen.
const EmailMarkSeen = "seen"

// EmailCursorKey returns the key of the routine's state under which the
// email trigger at index i keeps its place in the mailbox. The keys
// email.cursor.* are the trigger's: a state step must not write them.
func EmailCursorKey(i int) string {
	return EmailCursorPrefix + strconv.Itoa(i)
}

// EmailCursorPrefix begins the state keys reserved for email triggers.
const EmailCursorPrefix = "email.cursor."
