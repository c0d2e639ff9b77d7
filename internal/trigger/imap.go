package trigger

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	// Decoders for the charsets mail is written in (ISO-8859-*, Windows-125x,
	// Shift_JIS, GB18030, …): go-message reads every part through them.
	_ "github.com/emersion/go-message/charset"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/text/encoding/charmap"
)

// Limits of what one message puts in its event: the body text is cut at
// maxEventBody bytes, and at most maxAttachments are listed. A message is
// read up to maxMessageRead bytes; past that its tail is not read and the
// event says so.
const (
	maxEventBody   = 256 << 10
	maxAttachments = 100
	maxMessageRead = 32 << 20
	maxPartDepth   = 20
)

// MailEvent is the event of one message, as the run sees it in `event`.
type MailEvent struct {
	Mailbox     string       `json:"mailbox"`
	UID         uint32       `json:"uid"`
	UIDValidity uint32       `json:"uidvalidity"`
	MessageID   string       `json:"message_id"`
	InReplyTo   string       `json:"in_reply_to"`
	References  []string     `json:"references"`
	From        string       `json:"from"`
	FromName    string       `json:"from_name"`
	ReplyTo     string       `json:"reply_to"`
	To          []string     `json:"to"`
	Cc          []string     `json:"cc"`
	Subject     string       `json:"subject"`
	Date        string       `json:"date"`
	Body        string       `json:"body"`
	BodyType    string       `json:"body_type"`
	Attachments []Attachment `json:"attachments"`
	Size        int64        `json:"size"`
	// Problems says what of the message could not be read; the rest of
	// the event is what could.
	Problems []string `json:"problems"`
}

// Attachment is a part of a message that is a file: its name, type and
// decoded size. Its content is never in the event.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// parseMail reads a raw message into an event, best effort: a header it
// cannot decode, a broken MIME structure, an unknown charset or a body cut
// short is noted in Problems, and what was read before it is kept.
// truncated says raw is only the start of the message.
func parseMail(raw []byte, truncated bool) *MailEvent {
	ev := &MailEvent{References: []string{}, To: []string{}, Cc: []string{}, Attachments: []Attachment{}, Problems: []string{}}
	if truncated {
		ev.problem("the message is larger than %d MiB: only its first %d MiB were read", maxMessageRead>>20, maxMessageRead>>20)
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && ent == nil {
		ev.problem("the message could not be read: %v", err)
		return ev
	}
	if err != nil {
		ev.problem("%v", err)
	}
	readHeader(ev, ent.Header)
	var text, htmlText strings.Builder
	walkParts(ev, ent, 0, &text, &htmlText)
	switch {
	case strings.TrimSpace(text.String()) != "":
		ev.Body, ev.BodyType = text.String(), "text/plain"
	case htmlText.Len() > 0:
		ev.Body, ev.BodyType = htmlToText(htmlText.String()), "text/html"
	}
	ev.Body = validUTF8(ev.Body)
	if len(ev.Body) > maxEventBody {
		cut := maxEventBody
		for cut > 0 && !utf8.RuneStart(ev.Body[cut]) {
			cut--
		}
		ev.Body = ev.Body[:cut]
		ev.problem("the body is longer than %d KiB: it is cut there", maxEventBody>>10)
	}
	return ev
}

func (ev *MailEvent) problem(format string, args ...any) {
	if len(ev.Problems) < 20 {
		ev.Problems = append(ev.Problems, fmt.Sprintf(format, args...))
	}
}

// readHeader fills the header fields of ev.
func readHeader(ev *MailEvent, h message.Header) {
	ev.Subject = headerText(ev, h, "Subject")
	if from := addresses(ev, h, "From"); len(from) > 0 {
		ev.From, ev.FromName = from[0].Address, from[0].Name
	}
	if rt := addresses(ev, h, "Reply-To"); len(rt) > 0 {
		ev.ReplyTo = rt[0].Address
	}
	for _, a := range addresses(ev, h, "To") {
		ev.To = append(ev.To, a.Address)
	}
	for _, a := range addresses(ev, h, "Cc") {
		ev.Cc = append(ev.Cc, a.Address)
	}
	ids := msgIDs(h.Get("Message-Id"))
	if len(ids) > 0 {
		ev.MessageID = ids[0]
	}
	if ids := msgIDs(h.Get("In-Reply-To")); len(ids) > 0 {
		ev.InReplyTo = ids[0]
	}
	ev.References = append(ev.References, msgIDs(h.Get("References"))...)
	if d := h.Get("Date"); d != "" {
		t, err := mail.ParseDate(d)
		if err != nil {
			ev.problem("Date %q is not a date", validUTF8(d))
		} else {
			ev.Date = t.UTC().Format(time.RFC3339)
		}
	}
}

// headerText decodes the encoded words of a header field; raw bytes that
// are not UTF-8 (8-bit headers, against RFC 5322 but common) are read as
// Windows-1252, the usual charset of such mail.
func headerText(ev *MailEvent, h message.Header, key string) string {
	raw := h.Get(key)
	dec := mime.WordDecoder{CharsetReader: message.CharsetReader}
	s, err := dec.DecodeHeader(raw)
	if err != nil {
		ev.problem("%s: %v", key, err)
		s = raw
	}
	if !utf8.ValidString(s) {
		ev.problem("%s is not UTF-8: it was read as Windows-1252", key)
		if d, err := charmap.Windows1252.NewDecoder().String(s); err == nil {
			s = d
		}
	}
	return validUTF8(s)
}

// addresses parses an address list field; one it cannot parse is noted,
// and an address found in it is still taken when there is one.
func addresses(ev *MailEvent, h message.Header, key string) []*mail.Address {
	raw := h.Get(key)
	if raw == "" {
		return nil
	}
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: message.CharsetReader}}
	list, err := p.ParseList(raw)
	if err == nil {
		for _, a := range list {
			a.Name = validUTF8(a.Name)
		}
		return list
	}
	ev.problem("%s %q is not a list of addresses: %v", key, validUTF8(raw), err)
	// A bare address inside, such as in "broken <a@b.c>".
	if i, j := strings.LastIndex(raw, "<"), strings.LastIndex(raw, ">"); i >= 0 && j > i+1 {
		if a, err := mail.ParseAddress(raw[i : j+1]); err == nil {
			return []*mail.Address{a}
		}
	}
	return nil
}

// msgIDs returns the message ids of a field, each as <id>.
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		if id := v[i : i+j+1]; len(id) > 2 && !strings.ContainsAny(id[1:len(id)-1], "<> \t\r\n") {
			ids = append(ids, validUTF8(id))
		}
		v = v[i+j+1:]
	}
}

// walkParts collects the text of e's text/plain and text/html parts into
// text and htmlText, and lists its attachments.
func walkParts(ev *MailEvent, e *message.Entity, depth int, text, htmlText *strings.Builder) {
	if depth > maxPartDepth {
		ev.problem("parts nested deeper than %d are not read", maxPartDepth)
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && p == nil {
				ev.problem("the MIME structure is broken: %v", err)
				return
			}
			if err != nil {
				ev.problem("%v", err)
			}
			walkParts(ev, p, depth+1, text, htmlText)
		}
	}
	typ, params, err := e.Header.ContentType()
	if err != nil || typ == "" {
		typ = "text/plain"
	}
	disp, dparams, _ := e.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if disp == "attachment" || name != "" || !strings.HasPrefix(typ, "text/") && typ != "message/rfc822" {
		n, err := io.Copy(io.Discard, e.Body)
		if err != nil {
			ev.problem("attachment %q could not be read to its end: %v", validUTF8(name), err)
		}
		if len(ev.Attachments) < maxAttachments {
			ev.Attachments = append(ev.Attachments, Attachment{Name: decodeName(name), ContentType: typ, Size: n})
		}
		return
	}
	var dst *strings.Builder
	switch typ {
	case "text/plain":
		dst = text
	case "text/html":
		dst = htmlText
	default:
		io.Copy(io.Discard, e.Body)
		return
	}
	if dst.Len() > maxEventBody*4 {
		io.Copy(io.Discard, e.Body)
		return
	}
	b, err := io.ReadAll(io.LimitReader(e.Body, maxEventBody*4))
	if err != nil {
		ev.problem("a %s part could not be read to its end: %v", typ, err)
	}
	if dst.Len() > 0 {
		dst.WriteString("\n")
	}
	dst.Write(b)
}

// decodeName decodes a file name sent as encoded words, as some mailers do.
func decodeName(s string) string {
	dec := mime.WordDecoder{CharsetReader: message.CharsetReader}
	if d, err := dec.DecodeHeader(s); err == nil {
		s = d
	}
	return validUTF8(s)
}

// validUTF8 replaces the bytes of s that are not UTF-8.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// htmlToText renders HTML as plain text for a reader: the text of the
// document with its entities decoded; script, style and head left out; a
// line break for <br> and the ends of blocks, a blank line around
// paragraphs, headings, lists and tables; "- " before list items; runs of
// spaces collapsed, except inside <pre>.
func htmlToText(src string) string {
	t := &textWriter{}
	z := html.NewTokenizer(strings.NewReader(src))
	skip, pre := 0, 0 // depth inside script/style/head/title, and inside pre
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return strings.TrimSpace(t.b.String())
		case html.TextToken:
			switch {
			case skip > 0:
			case pre > 0:
				t.raw(string(z.Text()))
			default:
				t.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			start, end := tt != html.EndTagToken, tt == html.EndTagToken
			switch atom.Lookup(name) {
			case atom.Script, atom.Style, atom.Head, atom.Title, atom.Noscript, atom.Template:
				if tt == html.StartTagToken {
					skip++
				} else if end && skip > 0 {
					skip--
				}
			case atom.Br:
				t.breaks = min(t.breaks+1, 2)
			case atom.Pre:
				if tt == html.StartTagToken {
					pre++
				} else if end && pre > 0 {
					pre--
				}
				t.block(2)
			case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Blockquote, atom.Table, atom.Ul, atom.Ol, atom.Hr:
				t.block(2)
			case atom.Li:
				t.block(1)
				if start && skip == 0 {
					t.word("-")
					t.space = true
				}
			case atom.Div, atom.Tr, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Address, atom.Dt, atom.Dd:
				t.block(1)
			case atom.Td, atom.Th:
				t.space = true
			}
		}
	}
}

// textWriter lays out the words of htmlToText.
type textWriter struct {
	b      strings.Builder
	space  bool // a space is owed before the next word
	breaks int  // line breaks owed before the next word (at most 2)
}

// block ends the line, with n line breaks before what follows.
func (t *textWriter) block(n int) { t.breaks = max(t.breaks, n) }

// text writes the words of s, a space between them.
func (t *textWriter) text(s string) {
	if s != "" && isSpace(s[0]) {
		t.space = true
	}
	// Only ASCII white space separates words: a no-break space (&nbsp;)
	// holds its neighbours together.
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r < 128 && isSpace(byte(r)) }) {
		t.word(w)
		t.space = true
	}
	if s != "" && !isSpace(s[len(s)-1]) {
		t.space = false
	}
}

// raw writes s as it is (inside <pre>).
func (t *textWriter) raw(s string) {
	if s == "" {
		return
	}
	t.sep()
	t.b.WriteString(s)
}

func (t *textWriter) word(w string) {
	t.sep()
	t.b.WriteString(w)
}

// sep writes what is owed before the next word: line breaks, or a space.
func (t *textWriter) sep() {
	if t.b.Len() > 0 {
		switch {
		case t.breaks > 0:
			t.b.WriteString(strings.Repeat("\n", t.breaks))
		case t.space:
			t.b.WriteByte(' ')
		}
	}
	t.breaks, t.space = 0, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
