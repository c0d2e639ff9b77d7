// Package store defines how Routines keeps runs, step records, logs and the
// state of routines (their persistent key/value store): one
// Store interface with parameter structs, implemented by the drivers in
// store/sqlite (the embedded default) and store/postgres (remote mode), and
// checked by the conformance suite in store/storetest that every driver runs.
// The store knows rows, not runs in flight: it imports no engine or server.
package store

import (
	"context"
	"time"

	"github.com/routines-dev/routines/internal/routine"
)

// Store is the persistence seam. Every method is safe for concurrent use.
// Lookups of a missing row return an error wrapping routine.ErrNotFound.
// Times come back in UTC, to the microsecond; a field that holds an empty
// map or list comes back nil.
type Store interface {
	// RunCreate records a new run in state queued (or the state given),
	// with Attempt 0 and no timings but QueuedAt. A run created running
	// with a Worker is held by it, with a lease until QueuedAt + Lease,
	// exactly as if that worker had claimed it: a run executed by its
	// creator (run-once, a sub-run) is never claimable while its lease
	// holds. A taken id wraps ErrConflict; a trigger payload that is not
	// JSON is an error.
	RunCreate(ctx context.Context, p *RunCreateParams) (*routine.Run, error)
	// RunCreateDeduped is RunCreate for a deduplicated trigger: when
	// p.DedupeKey is set and a run of p.Routine with that key has a
	// DedupeUntil after p.QueuedAt (the caller's clock), it returns that
	// run and true and creates nothing; else it creates the run as
	// RunCreate does and returns false. The look-up and the insert are one
	// transaction: of concurrent callers with the same routine and key,
	// exactly one creates the run. Without a key it is RunCreate.
	RunCreateDeduped(ctx context.Context, p *RunCreateParams) (run *routine.Run, deduplicated bool, err error)
	// RunGet returns the run with this id. A unique prefix of an id of at
	// least 6 characters also finds it; an ambiguous one wraps ErrConflict.
	RunGet(ctx context.Context, id string) (*routine.Run, error)
	// RunList returns runs, newest first.
	RunList(ctx context.Context, p *RunListParams) ([]*routine.Run, error)
	// RunUpdate writes the mutable fields of a run (revision, state,
	// attempt, started_at, finished_at, region, resource use, error); the
	// others are fixed at creation and left as they are. The worker is set
	// by RunClaim and RunRequeue only, and guards the write: a run whose
	// stored worker is not run.Worker (another worker claimed it after this
	// one's lease expired) is left alone and the error wraps ErrConflict.
	// A missing run wraps ErrNotFound.
	RunUpdate(ctx context.Context, run *routine.Run) error

	// StepSave inserts or replaces the record of one step, keyed by run id,
	// phase and step id. A replaced record keeps its place in StepList. The
	// run must exist, else the error wraps ErrNotFound.
	StepSave(ctx context.Context, step *routine.StepRun) error
	// StepList returns the step records of a run in the order they were first saved.
	StepList(ctx context.Context, runID string) ([]*routine.StepRun, error)

	// LogAppend stores log lines; Seq is assigned by the caller and unique per run.
	// The lines are stored all or none: a Seq already taken wraps ErrConflict,
	// a line of a missing run ErrNotFound. Text may hold any bytes.
	LogAppend(ctx context.Context, lines []routine.LogLine) error
	// LogList returns the log lines of a run in Seq order.
	LogList(ctx context.Context, p *LogListParams) ([]routine.LogLine, error)

	// Checkpoint writes the run's mutable fields (as RunUpdate, when p.Run
	// is set), saves step records (as StepSave) and appends log lines (as
	// LogAppend) in one transaction: all of it or, on error, none. The
	// engine writes each step transition, and the run's start and end,
	// with it.
	Checkpoint(ctx context.Context, p *CheckpointParams) error

	// StateGet returns the value of a key in a routine's state and whether
	// it is there; a key that expired at or before p.Now is not.
	StateGet(ctx context.Context, p *StateGetParams) (value string, found bool, err error)
	// StatePut sets a key in a routine's state, replacing its value and
	// expiry, and reports whether the key was there (unexpired) before.
	StatePut(ctx context.Context, p *StatePutParams) (existed bool, err error)
	// StateDelete removes a key from a routine's state and reports whether
	// it was there (unexpired). Put and delete also drop the routine's keys
	// that expired at or before p.Now.
	StateDelete(ctx context.Context, p *StateDeleteParams) (existed bool, err error)

	// RunClaim takes up to p.Limit runs to execute off the queue (one when
	// p.Limit is 0), atomically: of two workers (goroutines or processes)
	// claiming at once, each gets different runs. A run is claimable when it is
	//   - queued, with no NotBefore or a NotBefore at or before p.Now, or
	//   - running with a lease that expired at or before p.Now: its worker
	//     is presumed dead (crash recovery), and the run resumes elsewhere.
	// A running run without a lease (created running without a worker)
	// is never claimable. Runs are taken one after the other, each
	// time the one queued first (queued_at, then id), skipping the runs of
	// a routine whose ceiling in p.Ceilings is reached: such a routine
	// already has that many running runs whose lease has not expired (or
	// that have none), counting those just taken; so too the runs of a
	// group of routines whose ceiling in p.GroupCeilings is reached,
	// counting the running runs of all its routines. Two claims never
	// both take the last slot of a routine or group. FIFO per routine, and
	// across routines the oldest head first, so a routine at its ceiling
	// holds back no other. A delayed run (NotBefore in the future) holds
	// back none of its routine either. A run taken becomes running with
	// Worker p.Worker and a lease until p.Now + p.Lease; its NotBefore is
	// cleared; the rest (attempt, started_at) is left to the executor. The
	// runs come back in the order taken, each with the worker it was
	// taken from (TakenFrom: "" for a queued run); nothing claimable is an
	// empty list.
	//
	// With p.Placement, a claim takes only the runs whose Requires the
	// worker's placement meets (routine.Placement.MetBy), and a run it
	// cannot take holds back none after it; each run taken gets the
	// worker's region as its Region. Without, it takes runs whatever
	// they require, and their Region is "".
	//
	// With p.Reserved, the claim keeps reserved slots free across the
	// fleet: its slots are those of the live workers in the registry
	// (WorkerList), its busy slots its running runs (those that count
	// against ceilings), and the unmet reservation of a routine of
	// p.Reserved is its reservation less its running runs, when more. A
	// run of a routine with an unmet reservation is taken as above; the
	// run of any other routine only while the free slots (slots less busy
	// ones) outnumber the unmet reservations together, counting the runs
	// this very claim took. Claims with p.Reserved take turns, so that two
	// of them never both take the last slot beyond the reservations.
	RunClaim(ctx context.Context, p *RunClaimParams) ([]*ClaimedRun, error)
	// RunHeartbeat extends to p.Now + p.Lease the lease of every running
	// run that p.Worker holds (of the runs in p.IDs only, when set), and
	// returns which it extended and, of those, which have a cancel
	// requested (RunCancelRequest), for the worker to cancel. A run claimed
	// by another worker after the lease expired is not p.Worker's any
	// more and is left alone.
	RunHeartbeat(ctx context.Context, p *RunHeartbeatParams) (*Heartbeat, error)
	// RunCancelRequest asks that run p.ID (a full id) be cancelled, and
	// returns the run as it is after the request. A queued run ends
	// cancelled at once: finished at p.Now, with an error payload of code
	// cancelled and p.Message, and so do its steps left queued or running
	// (a run waiting for a retry, cut short by a shutdown). A running run stays running with its
	// cancel requested at p.Now (the first request's time is kept), and
	// its holder hears of it: from RunHeartbeat, and at once from
	// Waker.CancelWakeups. A run that ended is left as it is. A missing
	// run wraps ErrNotFound.
	RunCancelRequest(ctx context.Context, p *RunCancelRequestParams) (*routine.Run, error)
	// RunHolders returns the workers that hold running runs with a
	// lease, expired or not, each once, in no particular order: the
	// owners whose liveness a daemon checks to take over the runs of a
	// dead one at once (RunExpire) rather than when their leases expire.
	RunHolders(ctx context.Context) ([]string, error)
	// RunExpire ends at p.Now the leases of the running runs p.Worker
	// holds, when they last longer, and returns how many it ended: the
	// worker is known dead, so RunClaim may take its runs over at once.
	// Their worker stays p.Worker until a claim takes them.
	RunExpire(ctx context.Context, p *RunExpireParams) (int, error)
	// RunRequeue puts a running run that p.Worker holds back in the queue:
	// state queued, not before p.NotBefore, no worker and no lease. Its
	// queued_at is kept, so once due it goes before the runs queued after
	// it. A missing run wraps ErrNotFound; a run that is not running or
	// that another worker holds wraps ErrConflict.
	RunRequeue(ctx context.Context, p *RunRequeueParams) error
	// RunCount counts runs by state, of the states in p.States (every
	// state when empty), of p.Routine when set and of p.Routines when not
	// nil. A state with no run is missing from the map.
	RunCount(ctx context.Context, p *RunCountParams) (map[routine.State]int, error)
	// RunOutcomeChanges returns where the outcome of a routine's runs
	// changed: of the runs that ended succeeded, failed or dead in
	// [p.Since, p.Until) (of p.Routines when set), ordered by routine, then
	// by end (finished_at), those whose outcome (succeeded or not)
	// differs from that of the routine's run before them in that order,
	// and each routine's first (runs that ended in the same microsecond
	// come in an order of the driver's). Cancelled runs count neither way.
	// These are where failure streaks begin and end, which the mean time
	// to recovery is read from; the driver finds them in one pass over
	// the runs and returns only them.
	RunOutcomeChanges(ctx context.Context, p *RunOutcomeChangesParams) ([]OutcomeChange, error)

	// WorkerBeat records that worker p.ID is alive at p.Now, with its
	// placement and slots: the registry of the workers of a deployment.
	// A new worker is added, started at p.Now; a known one has its
	// placement, slots and last beat replaced. Workers whose last beat is
	// WorkerForget older than p.Now are dropped.
	WorkerBeat(ctx context.Context, p *WorkerBeatParams) error
	// WorkerList returns the live workers at now, by id (bytewise): those
	// whose last beat is less than WorkerTimeout before now.
	WorkerList(ctx context.Context, now time.Time) ([]*Worker, error)
	// WorkerLeave drops worker id from the registry (it stopped), and
	// reports whether it was there.
	WorkerLeave(ctx context.Context, id string) (bool, error)

	// VaultKeyInit stores the wrapped data key of the builtin vault when
	// it has none, and returns the one it has: the one given, or the one
	// stored before (of concurrent callers, the first wins).
	VaultKeyInit(ctx context.Context, wrapped []byte, now time.Time) ([]byte, error)
	// VaultKeyGet returns the wrapped data key of the builtin vault; none
	// wraps ErrNotFound.
	VaultKeyGet(ctx context.Context) ([]byte, error)
	// SecretPut stores the ciphertext of a secret's value, replacing the
	// one it had, and returns the secret's version: 1 for a new name in
	// its namespace, one more than before for a replaced one. CreatedAt
	// is kept from the first version; RotatedAt is p.Now.
	SecretPut(ctx context.Context, p *SecretPutParams) (version int, err error)
	// SecretGet returns the secret of a namespace with this name; a
	// missing one wraps ErrNotFound.
	SecretGet(ctx context.Context, namespace, name string) (*Secret, error)
	// SecretList returns the secrets of a namespace, by name, without
	// ciphertext.
	SecretList(ctx context.Context, namespace string) ([]*Secret, error)
	// SecretDelete removes a secret of a namespace and reports whether it
	// was there.
	SecretDelete(ctx context.Context, namespace, name string) (existed bool, err error)
	// AuditAppend appends records to the audit log of secrets, all or none.
	AuditAppend(ctx context.Context, records []*AuditRecord) error
	// AuditList returns audit records, oldest first.
	AuditList(ctx context.Context, p *AuditListParams) ([]*AuditRecord, error)

	Revisions
	StatsReader
	Alerts
	Teams

	// Close releases the store.
	Close() error
}

// StatsReader reads the rollups of runs: what the dashboard, `routines
// stats`, alerts and budgets are computed from. A driver keeps them as
// runs end, in the write that ends them, so that reading a month of a
// million runs reads rollups, not runs.
type StatsReader interface {
	// Stats returns the aggregates of the runs that ended in
	// [p.Since, p.Until), one per routine that had such runs (of
	// p.Routines when set), ordered by routine name.
	Stats(ctx context.Context, p *StatsParams) ([]*Stats, error)
}

// Waker is implemented by a store that tells its users when runs may
// have become claimable, so that a scheduler sleeps until woken instead
// of polling the queue. It still polls, seldom, for what no write
// announces: a delayed run coming due, a lease running out.
type Waker interface {
	// Wakeups returns a channel that receives after a write that may have
	// made a run claimable: a run created queued, put back in the queue
	// (RunRequeue), ended (RunUpdate or Checkpoint to a final state) when
	// that frees a slot another claim may wait for — a run claimed under
	// a ceiling of its routine (RunClaimParams.Ceilings), or one created
	// running — or held by a worker known dead (RunExpire ended its
	// lease). A driver may wake more often (at every end): the end of a
	// run claimed without a ceiling frees only its worker's slot, which
	// that worker knows of. The writes through this Store wake it; with a driver
	// that several processes share (PostgreSQL), so do those of every
	// Store on the same database, and a wake-up also follows a lost and
	// regained connection, since writes may have gone unheard meanwhile.
	// The first wake-up comes as soon as the channel hears writes (at
	// once, or when the connection that listens is up): writes after it
	// are sure to wake it, so a receiver looks at the queue then. Wake-ups
	// coalesce: the channel holds one at most, and a receiver takes it as
	// "look at the queue again", never as a count; one may come with
	// nothing new. The channel closes when ctx ends or the store closes.
	Wakeups(ctx context.Context) <-chan struct{}
	// CancelWakeups returns a channel that receives after a cancel of a
	// running run was requested (RunCancelRequest), through this Store or
	// (PostgreSQL) any on the same database, and after a lost and regained
	// connection: the holders of runs then ask RunHeartbeat which of theirs
	// to cancel, at once rather than at their next heartbeat. Wake-ups
	// coalesce as those of Wakeups do; the channel closes when ctx ends or
	// the store closes.
	CancelWakeups(ctx context.Context) <-chan struct{}
}

// Secret is a stored secret of the builtin vault: its value only as
// ciphertext, which the store neither makes nor reads. A secret is its
// namespace's: the same name in two namespaces is two secrets.
type Secret struct {
	Namespace  string
	Name       string
	Ciphertext []byte // nil in SecretList
	Version    int
	CreatedAt  time.Time
	RotatedAt  time.Time
}

// SecretPutParams are what SecretPut writes.
type SecretPutParams struct {
	Namespace  string
	Name       string
	Ciphertext []byte
	Now        time.Time
}

// The actions an audit record tells of.
const (
	AuditResolve = "resolve" // a value was resolved for a run or a trigger
	AuditSet     = "set"     // a value was stored or rotated
	AuditDelete  = "delete"  // a secret was removed
)

// AuditRecord is one use or change of a secret. It never holds a value.
type AuditRecord struct {
	Time     time.Time
	Action   string // AuditResolve, AuditSet or AuditDelete
	Secret   string
	Provider string
	Routine  string // the routine that resolved it; "" for a command
	RunID    string // the run it was resolved for; "" for a trigger or a command
	OK       bool
	Error    string // why it failed, when it did
}

// AuditListParams filter AuditList. Zero values do not filter.
type AuditListParams struct {
	Secret string
	Since  time.Time // records at or after
	Limit  int       // the newest Limit records; 0 = all
}

// RunCreateParams are the fields of a new run.
type RunCreateParams struct {
	ID       string // a ULID, made by the caller
	Routine  string
	Revision string
	Trigger  routine.TriggerInfo
	Input    map[string]string
	Tags     []string
	State    routine.State // queued when empty
	QueuedAt time.Time
	ReplayOf string
	// NotBefore delays a queued run: RunClaim does not take it earlier.
	NotBefore *time.Time
	// Worker and Lease, for a run created running, record who executes
	// it and until when (QueuedAt + Lease) it is theirs without a
	// heartbeat (RunHeartbeat). A running run created without a worker
	// has no lease: it holds its routine's slot until it ends, and no
	// crash recovery takes it over.
	Worker string
	Lease  time.Duration
	// Requires is what a worker must have to claim the run: the
	// routine's region and labels (routine.NewPlacement).
	Requires routine.Placement
	// DedupeKey and DedupeUntil make the run the one that later runs of
	// the same routine and key fold into, up to DedupeUntil (see
	// RunCreateDeduped). A key without DedupeUntil dedupes nothing.
	DedupeKey   string
	DedupeUntil *time.Time
	// TraceID and ParentSpanID place the run's spans in a trace: the
	// caller's (from its traceparent) or a new one.
	TraceID      string
	ParentSpanID string
}

// ClaimedRun is a run RunClaim took.
type ClaimedRun struct {
	*routine.Run
	// TakenFrom is the worker that held the run when its lease had
	// expired and the claim took it over (the worker is dead, or stalled:
	// what it started of the run may still be running); "" for a run
	// taken off the queue.
	TakenFrom string
}

// RunExpireParams name the dead worker whose leases RunExpire ends.
type RunExpireParams struct {
	Worker string
	Now    time.Time
}

// RunClaimParams say who claims a run, when, for how long, and within
// which ceilings.
type RunClaimParams struct {
	Worker string        // recorded on the run, and checked by RunHeartbeat and RunRequeue
	Now    time.Time     // the caller's clock: judges NotBefore and leases
	Lease  time.Duration // the claimed run's lease lasts until Now + Lease
	// Ceilings maps a routine name to the most runs of it that may be
	// running at once. A routine not in the map, or mapped to 0 or less,
	// has no ceiling.
	Ceilings map[string]int
	// Groups maps a routine name to its group (its namespace), and
	// GroupCeilings a group to the most runs of its routines together
	// that may be running at once, as Ceilings does for one routine: a
	// run is claimed only within both. A routine not in Groups, or of a
	// group mapped to 0 or less, has no group ceiling. The running runs
	// counted are those of the routines Groups puts in the group.
	Groups        map[string]string
	GroupCeilings map[string]int
	// Exclude names routines whose runs are not to be claimed now (the
	// local daemon keeps its workers reserved for other routines).
	Exclude []string
	// Reserved maps a routine name to its concurrency.reserved, kept free
	// for it in the slots of the whole fleet (remote mode; see RunClaim).
	// Empty: no reservation across the fleet.
	Reserved map[string]int
	// Limit is the most runs to take; 1 when 0.
	Limit int
	// Placement is the claiming worker's region and labels (remote mode):
	// it takes only the runs whose requirements they meet. Nil: runs
	// whatever they require (a local daemon, the one worker there is).
	Placement *routine.Placement
}

// The registry of workers judges them alive by their beats.
const (
	// WorkerTimeout is how long after its last beat a worker is live.
	WorkerTimeout = 30 * time.Second
	// WorkerForget is how long after its last beat a worker that did not
	// leave (it died) is dropped from the registry.
	WorkerForget = 24 * time.Hour
)

// Worker is a process that executes runs (routines worker, or a server
// with --workers), as the registry of workers knows it.
type Worker struct {
	ID        string
	Placement routine.Placement
	Slots     int // runs it executes at once
	StartedAt time.Time
	BeatAt    time.Time // its last beat
}

// WorkerBeatParams are what WorkerBeat records of a worker.
type WorkerBeatParams struct {
	ID        string
	Placement routine.Placement
	Slots     int
	Now       time.Time
}

// RunHeartbeatParams name the worker whose leases RunHeartbeat extends.
type RunHeartbeatParams struct {
	Worker string
	IDs    []string // only these runs, when set
	Now    time.Time
	Lease  time.Duration // the leases last until Now + Lease
}

// Heartbeat is what RunHeartbeat did.
type Heartbeat struct {
	Renewed []string // the runs whose lease it extended
	Cancel  []string // of those, the runs whose cancel was requested
}

// Add records a run whose lease was extended, and whether its cancel was
// requested: what a driver reads of each row.
func (h *Heartbeat) Add(id string, cancel bool) {
	h.Renewed = append(h.Renewed, id)
	if cancel {
		h.Cancel = append(h.Cancel, id)
	}
}

// RunCancelRequestParams name the run RunCancelRequest is to cancel.
type RunCancelRequestParams struct {
	ID  string
	Now time.Time
	// Message is the error message of a queued run, which ends at once:
	// who cancelled it.
	Message string
}

// Error is the error payload of a queued run the request ends.
func (p *RunCancelRequestParams) Error() *routine.ErrorPayload {
	return &routine.ErrorPayload{Code: routine.CodeCancelled, Message: p.Message, RunID: p.ID}
}

// RunRequeueParams name the run RunRequeue puts back in the queue.
type RunRequeueParams struct {
	ID        string
	Worker    string     // the worker that holds the run
	NotBefore *time.Time // nil: claimable at once
	// Now is the caller's clock when it chose NotBefore. A store that
	// judges the queue by the database's clock (the PostgreSQL driver's
	// Options.DatabaseClock) keeps the delay, NotBefore - Now, rather
	// than the instant, which a skewed clock would shift. Zero: NotBefore
	// is taken as it is.
	Now time.Time
}

// RunCountParams filter RunCount. Zero values do not filter.
type RunCountParams struct {
	Routine string
	// Routines counts the runs of these routines only, when not nil (the
	// routines of a namespace); an empty, non-nil list counts none.
	Routines []string
	States   []routine.State
}

// RunOutcomeChangesParams select the runs RunOutcomeChanges reads.
type RunOutcomeChangesParams struct {
	Routines     []string // these routines only, when set
	Since, Until time.Time
}

// OutcomeChange is a run whose outcome differs from its routine's run
// before it (RunOutcomeChanges).
type OutcomeChange struct {
	Routine    string
	State      routine.State // succeeded, failed or dead
	FinishedAt time.Time
}

// RunListParams filter RunList. Zero values do not filter.
type RunListParams struct {
	Routine string
	// Routines keeps the runs of these routines only, when not nil (the
	// routines of a namespace); an empty, non-nil list keeps none.
	Routines []string
	States   []routine.State
	Trigger  string // the trigger kind (cron, webhook, manual…)
	Tag      string // runs carrying this tag
	// Since and Until bound QueuedAt: Since <= QueuedAt < Until.
	Since, Until time.Time
	IDPrefix     string // runs whose id starts with it
	// Before is a page's cursor: the id of the last run of the page
	// before. Only the runs after that run in the newest-first order
	// (queued_at, then id) are listed, so that pages walk every run once
	// even where ids and queued_at disagree; a Before that is no run's id
	// keeps the runs whose id sorts before it (ids are ULIDs).
	Before string
	Limit  int // default 50
}

// StatsParams select what Stats aggregates: the runs that ended in
// [Since, Until), to the minute (PlanStats says how a driver reads its
// rollups); a zero Until is no bound. A run ends when its state becomes
// final, once: at its finish, else its start, else its queueing (a queued
// run cancelled).
type StatsParams struct {
	Routines []string // these routines only, when set
	Since    time.Time
	Until    time.Time
	// Step is the width of the points of each routine's Series; zero: no
	// series, totals only. The store may widen it to the resolution it
	// keeps (a minute, an hour) and says so in Stats.Step.
	Step time.Duration
}

// Stats are the aggregates of one routine's runs that ended in a range,
// read from rollups kept as runs end rather than by scanning runs.
type Stats struct {
	Routine string
	Totals  Aggregate
	Step    time.Duration // the width of Series' points
	Series  []Aggregate   // oldest first; points with no run are missing
}

// Aggregate sums the runs that ended in [Start, Start+width).
type Aggregate struct {
	Start   time.Time
	ByState map[routine.State]int64 // ended runs by final state
	// Duration is from start to end of the runs that started; QueueWait
	// from queued to (last) start.
	Duration   Histogram
	QueueWait  Histogram
	CPUSeconds float64 // user + system
	// PeakRSSKB is the most memory a run held (its largest step's peak
	// resident set), in KiB: a maximum, not a sum.
	PeakRSSKB int64
	Usage     routine.Usage
}

// Histogram counts durations in fixed, roughly logarithmic buckets, so
// that histograms of runs, minutes and routines merge by adding and give
// quantiles within a bucket's width (HistogramBounds).
type Histogram struct {
	Counts []int64 // len(HistogramBounds)+1; the last counts what exceeds every bound
	Sum    time.Duration
}

// CheckpointParams are what one Checkpoint writes.
type CheckpointParams struct {
	Run *routine.Run // nil: the run record is left as it is
	// RunID and Holder, when Holder is set, guard a checkpoint as the
	// worker guards RunUpdate: unless the run is still held by Holder,
	// nothing is written and the error wraps ErrConflict.
	RunID  string
	Holder string
	Steps  []*routine.StepRun
	Logs   []routine.LogLine
}

// LogListParams select the lines LogList returns.
type LogListParams struct {
	RunID    string
	Step     string // only this step's lines, when set
	AfterSeq int64  // lines with Seq > AfterSeq
	Limit    int    // 0 = all
}

// StateGetParams name the key StateGet reads. Routine is the namespace:
// the keys of one routine are invisible to the others.
type StateGetParams struct {
	Routine string
	Key     string
	Now     time.Time // the caller's clock, which judges expiry
}

// StatePutParams are what StatePut writes.
type StatePutParams struct {
	Routine   string
	Key       string
	Value     string
	ExpiresAt *time.Time // nil: the key never expires
	Now       time.Time  // the caller's clock: the time of the write, which judges expiry
}

// StateDeleteParams name the key StateDelete removes.
type StateDeleteParams struct {
	Routine string
	Key     string
	Now     time.Time // the caller's clock, which judges expiry
}
