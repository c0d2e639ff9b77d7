package store

import (
	"context"
	"time"
)

// DefaultNamespace is the namespace of what was there before namespaces
// (existing revisions and secrets) and of everything a local daemon serves.
const DefaultNamespace = "default"

// Teams keeps who may use a deployment and what they did: API tokens
// (stored as hashes, never values), the policies of namespaces, and the
// append-only trail of actions. A request looks its token up by hash on
// every call, so a revoked or expired token fails at once on every server
// of a deployment.
type Teams interface {
	// TokenCreate records a new token. A name taken by another token,
	// revoked or not, wraps ErrConflict, as does a taken hash.
	TokenCreate(ctx context.Context, p *TokenCreateParams) (*Token, error)
	// TokenBootstrap records p's token only when the store has no token
	// at all, and reports whether it did: of servers starting at once on
	// one database, exactly one creates it.
	TokenBootstrap(ctx context.Context, p *TokenCreateParams) (created bool, err error)
	// TokenByHash returns the token whose value hashes to hash, revoked
	// and expired ones too (the caller judges them); none wraps
	// ErrNotFound.
	TokenByHash(ctx context.Context, hash string) (*Token, error)
	// TokenList returns the tokens (of p.Namespace when set), by name.
	TokenList(ctx context.Context, p *TokenListParams) ([]*Token, error)
	// TokenRevoke revokes the token named or with the id p.Token (of
	// p.Namespace when set) at p.Now, and returns it; revoking a revoked
	// token keeps its first time. None wraps ErrNotFound.
	TokenRevoke(ctx context.Context, p *TokenRevokeParams) (*Token, error)
	// TokenRevocations returns a channel that receives after a token was
	// revoked through this Store or (PostgreSQL) any on the same database,
	// and after a lost and regained connection, since revocations may have
	// gone unheard meanwhile: a server empties its cache of tokens then.
	// Wake-ups coalesce as those of Waker do; the channel closes when ctx
	// ends or the store closes.
	TokenRevocations(ctx context.Context) <-chan struct{}

	// NamespacePut creates or replaces the whole policy of a namespace.
	NamespacePut(ctx context.Context, ns *Namespace) error
	// NamespaceGet returns the policy of a namespace; one never set wraps
	// ErrNotFound (it has no policy: any region, no ceilings).
	NamespaceGet(ctx context.Context, name string) (*Namespace, error)
	// NamespaceList returns the namespaces with a policy, by name.
	NamespaceList(ctx context.Context) ([]*Namespace, error)

	// ActionAppend appends a record to the trail of actions. Records are
	// never changed or removed.
	ActionAppend(ctx context.Context, a *Action) error
	// ActionList returns records of the trail, oldest first: the newest
	// p.Limit of those p selects, when p.Limit is set.
	ActionList(ctx context.Context, p *ActionListParams) ([]*Action, error)
}

// The roles of tokens, each allowed what the one before is and more.
const (
	RoleViewer   = "viewer"   // reads
	RoleInvoker  = "invoker"  // also starts, cancels, re-runs and replays runs
	RoleDeployer = "deployer" // also pushes, rolls back and sets secrets
	RoleAdmin    = "admin"    // also manages tokens and namespaces
)

// Roles are the roles, least first.
var Roles = []string{RoleViewer, RoleInvoker, RoleDeployer, RoleAdmin}

// RoleRank is the place of a role in Roles, or -1 for no role.
func RoleRank(role string) int {
	for i, r := range Roles {
		if r == role {
			return i
		}
	}
	return -1
}

// Token is an API token as stored: its hash, never its value.
type Token struct {
	ID        string // a ULID
	Name      string // unique in the deployment; how commands name it
	Hash      string // sha256 hex of the value
	Role      string
	Namespace string
	CreatedBy string // the name of the token that created it; "" for the bootstrap token
	CreatedAt time.Time
	ExpiresAt *time.Time // nil: never
	RevokedAt *time.Time // nil: not revoked
}

// Valid reports whether the token opens the API at now: not revoked, not
// expired.
func (t *Token) Valid(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
}

// TokenCreateParams are the fields of a new token.
type TokenCreateParams struct {
	ID        string
	Name      string
	Hash      string
	Role      string
	Namespace string
	CreatedBy string
	Now       time.Time
	ExpiresAt *time.Time
}

// TokenListParams filter TokenList.
type TokenListParams struct {
	Namespace string // "" for every namespace
}

// TokenRevokeParams name the token TokenRevoke revokes.
type TokenRevokeParams struct {
	Token     string // its name or id
	Namespace string // "" for any namespace
	Now       time.Time
}

// Namespace is the policy of a namespace.
type Namespace struct {
	Name string
	// Regions are where its runs may execute; empty: anywhere.
	Regions []string
	// MaxRunning is the most runs of its routines that may be running
	// at once across the fleet, on top of each routine's
	// concurrency.max; 0: no ceiling.
	MaxRunning int
	// MaxQueued is the most runs of its routines that may be queued: a
	// new one past it is refused; 0: no ceiling.
	MaxQueued int
	UpdatedAt time.Time
}

// AllowsRegion reports whether the namespace lets a routine ask region
// ("" when it asks none).
func (ns *Namespace) AllowsRegion(region string) bool {
	if len(ns.Regions) == 0 {
		return true
	}
	for _, r := range ns.Regions {
		if r == region {
			return true
		}
	}
	return false
}

// The outcomes of an action.
const (
	OutcomeOK      = "ok"      // done
	OutcomeDenied  = "denied"  // the token may not do it (or see what it names)
	OutcomeFailed  = "failed"  // refused or failed for another reason
	OutcomeInvalid = "invalid" // no valid token: missing, wrong, expired or revoked
)

// Action is one record of the trail of actions: who did what, from
// where, and how it ended. It never holds a secret's value or a token's.
type Action struct {
	Seq       int64
	Time      time.Time
	Actor     string // the token's name
	Role      string
	Namespace string
	Source    string // the client's address
	Action    string // such as "push", "run.cancel", "secret.set", "token.create"
	Target    string // what it acted on: a routine, a run id, a secret or token name
	Outcome   string // OutcomeOK, OutcomeDenied, OutcomeFailed or OutcomeInvalid
	Detail    string // the HTTP status and error message, when it failed
}

// ActionListParams filter ActionList. Zero values do not filter.
type ActionListParams struct {
	Since     time.Time // records at or after
	Actor     string
	Namespace string
	Limit     int // the newest Limit records; 0: all
}
