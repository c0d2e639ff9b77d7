package trigger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of a Slack request (slash commands, interactivity, events).
const (
	HeaderSlackSignature = "X-Slack-Signature"
	HeaderSlackTimestamp = "X-Slack-Request-Timestamp"
)

// SlackMaxSkew is how far the timestamp of a Slack request may be from
// now, either way: Slack's own advice against replayed requests.
const SlackMaxSkew = 5 * time.Minute

// ErrStaleRequest is returned by VerifySlack for a timestamp too far from
// now: a replay, or a clock that is off.
var ErrStaleRequest = errors.New("request timestamp is more than 5 minutes from now")

// VerifySlack checks a request signed the way Slack signs them: signature
// is "v0=" and the hex HMAC-SHA256, keyed with the app's signing secret,
// of "v0:<timestamp>:<body>", and timestamp (Unix seconds) is within
// SlackMaxSkew of now. The comparison takes constant time. It returns
// ErrNoSignature, ErrBadSignature or ErrStaleRequest (wrapped).
func VerifySlack(secret, timestamp string, body []byte, signature string, now time.Time) error {
	if signature == "" || timestamp == "" {
		return fmt.Errorf("%w: want both %s and %s", ErrNoSignature, HeaderSlackSignature, HeaderSlackTimestamp)
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrBadSignature, HeaderSlackTimestamp, timestamp)
	}
	// The difference in seconds, so a far-off timestamp cannot overflow
	// a Duration.
	if d := now.Unix() - sec; d > int64(SlackMaxSkew/time.Second) || -d > int64(SlackMaxSkew/time.Second) {
		return fmt.Errorf("%w (%s %s)", ErrStaleRequest, HeaderSlackTimestamp, timestamp)
	}
	sig, ok := strings.CutPrefix(signature, "v0=")
	if !ok {
		return fmt.Errorf("%w: %s must start with v0=", ErrBadSignature, HeaderSlackSignature)
	}
	msg := make([]byte, 0, len("v0::")+len(timestamp)+len(body))
	msg = append(append(append(msg, "v0:"...), timestamp...), ':')
	msg = append(msg, body...)
	return checkMAC([]byte(secret), msg, sig)
}
