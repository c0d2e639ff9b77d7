package api

import "time"

// Token is an API token as GET /v1/tokens lists it: never its value.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Namespace string     `json:"namespace"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// TokenCreate is the body of POST /v1/tokens. Expires is a duration such
// as 30d or 12h; "" never expires. Namespace is the caller's when "".
type TokenCreate struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Namespace string `json:"namespace,omitempty"`
	Expires   string `json:"expires,omitempty"`
}

// NewToken is the answer of POST /v1/tokens: the token and, this once,
// its value.
type NewToken struct {
	Token
	Value string `json:"value"`
}

// Namespace is the policy of a namespace (GET /v1/namespaces, PUT
// /v1/namespaces/<name>): the regions its runs may execute in, [] for any,
// and its ceilings, 0 for none: the most runs of its routines running at
// once across the fleet, and queued.
type Namespace struct {
	Name       string    `json:"name"`
	Regions    []string  `json:"regions"`
	MaxRunning int       `json:"max_running"`
	MaxQueued  int       `json:"max_queued"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
}

// NamespaceSet is the body of PUT /v1/namespaces/<name>: the fields of the
// policy to change. A field left out keeps its value (a namespace never
// set has any region and no ceilings), so that setting one never clears
// another.
type NamespaceSet struct {
	Regions    *[]string `json:"regions,omitempty"`
	MaxRunning *int      `json:"max_running,omitempty"`
	MaxQueued  *int      `json:"max_queued,omitempty"`
}

// Action is one record of the trail of actions (GET /v1/audit).
type Action struct {
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Role      string    `json:"role"`
	Namespace string    `json:"namespace"`
	Source    string    `json:"source"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditQuery selects the records of GET /v1/audit: since (a time or a
// duration ago), actor and limit. Zero values do not filter.
type AuditQuery struct {
	Since time.Time
	Actor string
	Limit int
}
