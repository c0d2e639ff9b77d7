package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/stepkind"
	"github.com/routines-dev/routines/internal/tracing"
)

// SlackKind posts a message with Slack's chat.postMessage, through
// slack-go, to slack.com or to the step's base_url.
type SlackKind struct {
	// Client sends the requests; a plain http.Client when nil.
	Client *http.Client
}

// Name implements Kind.
func (SlackKind) Name() string { return "slack" }

// DirFree implements stepkind.DirFree: its steps use no file of the
// routine directory.
func (SlackKind) DirFree() {}

var _ stepkind.DirFree = SlackKind{}

// slackTimeout bounds one post when the step has no timeout of its own.
const slackTimeout = 30 * time.Second

// Execute implements Kind. It outputs ts (the message's timestamp: its id,
// which thread_ts of a later step takes) and channel (the id of the
// channel Slack posted to).
// Its Result's Usage counts the bodies of the call.
func (k SlackKind) Execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	return metered(ctx, func(ctx context.Context) (*stepkind.Result, error) { return k.execute(ctx, x) })
}

func (k SlackKind) execute(ctx context.Context, x *stepkind.Execution) (*stepkind.Result, error) {
	a := x.Action.Slack
	if a == nil {
		return nil, stepkind.Fail("", false, errors.New("slack: the step has no slack action"))
	}
	token := strings.TrimSpace(a.Token)
	if token == "" {
		return nil, stepkind.Fail(routine.CodeAuth, false, errors.New("slack: token rendered empty: is its secret set?"))
	}
	channel := strings.TrimSpace(a.Channel)
	if channel == "" {
		return nil, stepkind.Fail("", false, errors.New("slack: channel rendered empty"))
	}
	var opts []slack.MsgOption
	if a.Text != "" {
		// Not escaped: the text is mrkdwn, so <@U123> mentions and
		// <url|links> work.
		opts = append(opts, slack.MsgOptionText(a.Text, false))
	}
	if a.Blocks != nil {
		blocks, err := slackBlocks(a.Blocks)
		if err != nil {
			return nil, stepkind.Fail("", false, err)
		}
		opts = append(opts, slack.MsgOptionBlocks(blocks.BlockSet...))
	}
	if len(opts) == 0 {
		return nil, stepkind.Fail("", false, errors.New("slack: text and blocks rendered empty: nothing to post"))
	}
	if a.ThreadTS != "" {
		opts = append(opts, slack.MsgOptionTS(a.ThreadTS))
	}
	base := a.BaseURL
	if base == "" {
		base = routine.DefaultSlackAPIURL
	}
	if !strings.HasSuffix(base, "/") {
		base += "/" // slack-go appends the method name
	}
	api := slack.New(token, slack.OptionAPIURL(base), slack.OptionHTTPClient(tracing.Client(metering(k.Client))))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, slackTimeout)
		defer cancel()
	}
	gotChannel, ts, err := api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return nil, slackFailure(ctx, channel, err)
	}
	if ts == "" {
		return nil, stepkind.Fail(routine.CodeInvalidResponse, true, fmt.Errorf("slack: chat.postMessage to %s: the answer has no ts", channel))
	}
	if gotChannel == "" {
		gotChannel = channel
	}
	fmt.Fprintf(x.Stdout, "posted to %s (ts %s)\n", channel, ts)
	return &stepkind.Result{Outputs: routine.Outputs{"ts": ts, "channel": gotChannel}}, nil
}

// slackBlocks turns the step's blocks (YAML, rendered) into Block Kit
// blocks, through the JSON Slack takes.
func slackBlocks(v any) (slack.Blocks, error) {
	var blocks slack.Blocks
	data, err := json.Marshal(v)
	if err != nil {
		return blocks, fmt.Errorf("slack: blocks: %w", err)
	}
	if err := json.Unmarshal(data, &blocks); err != nil {
		return blocks, fmt.Errorf("slack: blocks are not Block Kit: %w", err)
	}
	return blocks, nil
}

// slackAuthErrors are the errors of Slack's Web API that say the token
// cannot do this: another try with the same token fails the same way.
var slackAuthErrors = []string{
	"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
	"missing_scope", "not_allowed_token_type", "no_permission", "team_access_not_granted",
}

// slackServerErrors are the errors of Slack's Web API that say Slack
// failed, not the request: another try may succeed.
var slackServerErrors = []string{"internal_error", "fatal_error", "service_unavailable", "request_timeout"}

// slackHints say what to do about the errors users meet most.
var slackHints = map[string]string{
	"channel_not_found": "check the channel name or id, and invite the app to a private channel",
	"not_in_channel":    "invite the app to the channel (/invite @your-app)",
	"is_archived":       "the channel is archived",
	"missing_scope":     "add the chat:write scope to the app and reinstall it",
	"invalid_auth":      "check the bot token (xoxb-…) in its secret",
	"not_authed":        "no token reached Slack: check the token's secret",
	"token_revoked":     "the token was revoked: store a new one in its secret",
	"invalid_blocks":    "Slack refused the blocks: check them in the Block Kit Builder",
}

// slackFailure describes a failed post for the error payload.
func slackFailure(ctx context.Context, channel string, err error) error {
	where := "slack: chat.postMessage to " + channel
	var (
		rl     *slack.RateLimitedError
		status slack.StatusCodeError
		apiErr slack.SlackErrorResponse
		numErr *strconv.NumError
		netErr net.Error
		synErr *json.SyntaxError
		typErr *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("%s: %w", where, err)
	case errors.As(err, &rl):
		return &stepkind.Error{Code: routine.CodeRateLimited, Retryable: true, After: rl.RetryAfter, Err: fmt.Errorf("%s: rate limited by Slack (Retry-After %s)", where, rl.RetryAfter)}
	case errors.As(err, &numErr):
		// slack-go reads Retry-After of a 429 as seconds; any other form
		// (an HTTP date) comes back as this parse error.
		return stepkind.Fail(routine.CodeRateLimited, true, fmt.Errorf("%s: rate limited by Slack (Retry-After not in seconds: %w)", where, err))
	case errors.As(err, &status):
		e := fmt.Errorf("%s: Slack answered HTTP %s", where, status.Status)
		switch c := status.Code; {
		case c == http.StatusTooManyRequests:
			return stepkind.Fail(routine.CodeRateLimited, true, e)
		case c == http.StatusUnauthorized || c == http.StatusForbidden:
			return stepkind.Fail(routine.CodeAuth, false, e)
		case c >= 500 || c == http.StatusRequestTimeout:
			return stepkind.Fail(routine.CodeHTTPStatus, true, e)
		default:
			return stepkind.Fail(routine.CodeHTTPStatus, false, e)
		}
	case errors.As(err, &apiErr):
		msg := where + ": Slack error " + apiErr.Err
		if len(apiErr.ResponseMetadata.Messages) > 0 {
			msg += " (" + strings.Join(apiErr.ResponseMetadata.Messages, "; ") + ")"
		}
		if h := slackHints[apiErr.Err]; h != "" {
			msg += ": " + h
		}
		e := errors.New(msg)
		switch {
		case slices.Contains(slackAuthErrors, apiErr.Err):
			return stepkind.Fail(routine.CodeAuth, false, e)
		case apiErr.Err == "ratelimited":
			return stepkind.Fail(routine.CodeRateLimited, true, e)
		case slices.Contains(slackServerErrors, apiErr.Err):
			return stepkind.Fail(routine.CodeHTTPStatus, true, e)
		default:
			// channel_not_found, not_in_channel, invalid_blocks, …: Slack
			// understood the request and refused it, like a 4xx status.
			return stepkind.Fail(routine.CodeHTTPStatus, false, e)
		}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return stepkind.Fail(routine.CodeTimeout, true, fmt.Errorf("%s: no answer in time: %w", where, err))
	case errors.As(err, &synErr), errors.As(err, &typErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return stepkind.Fail(routine.CodeInvalidResponse, true, fmt.Errorf("%s: the answer is not Slack's JSON: %w", where, err))
	}
	// The request did not get through (refused, reset, DNS): another try may.
	return stepkind.Fail("", true, fmt.Errorf("%s: %w", where, err))
}

var _ stepkind.Kind = SlackKind{}
