package routine

// Routine is one routine.yaml, decoded. The yaml tags are the file format;
// the json tags mirror them so the JSON Schema (generated from these types)
// describes the same document.
type Routine struct {
	Name        string            `yaml:"name" json:"name" jsonschema:"pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,description=Unique name of the routine in its project: lower-case letters\\, digits and dashes."`
	Description string            `yaml:"description,omitempty" json:"description,omitempty"`
	Tags        []string          `yaml:"tags,omitempty" json:"tags,omitempty" jsonschema:"description=Free labels (dev\\, staging\\, prod…) used for filters and budgets."`
	Region      string            `yaml:"region,omitempty" json:"region,omitempty" jsonschema:"pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,description=Remote mode only: run only on workers of this region (routines worker --region). A local daemon ignores it."`
	Labels      []string          `yaml:"labels,omitempty" json:"labels,omitempty" jsonschema:"uniqueItems=true,pattern=^[a-z0-9]([a-z0-9-]*[a-z0-9])?$,description=Remote mode only: run only on workers that have every one of these labels (routines worker --labels). A local daemon ignores them."`
	Timeout     Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty" jsonschema:"description=Limit for the whole run\\, such as 10m."`
	Parallelism int               `yaml:"parallelism,omitempty" json:"parallelism,omitempty" jsonschema:"minimum=1,description=How many steps whose needs are met may run at once (default: CPUs × 4)."`
	Concurrency *Concurrency      `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
	Inputs      map[string]Input  `yaml:"inputs,omitempty" json:"inputs,omitempty" jsonschema:"description=Declared inputs; when present\\, only these may be referenced as input.NAME."`
	Env         map[string]string `yaml:"env,omitempty" json:"env,omitempty" jsonschema:"description=Plain values given to every step; visible in logs."`
	Secrets     []SecretRef       `yaml:"secrets,omitempty" json:"secrets,omitempty" jsonschema:"description=The only secrets this routine may resolve."`
	Permissions *Permissions      `yaml:"permissions,omitempty" json:"permissions,omitempty"`
	Limits      *Limits           `yaml:"limits,omitempty" json:"limits,omitempty"`
	Resources   *Resources        `yaml:"resources,omitempty" json:"resources,omitempty" jsonschema:"description=Limits of each run step's processes together (a cgroup per step); unset fields take the host's defaults."`
	Triggers    []Trigger         `yaml:"triggers,omitempty" json:"triggers,omitempty"`
	Steps       []Step            `yaml:"steps" json:"steps" jsonschema:"minItems=1"`
	OnFailure   []Step            `yaml:"on_failure,omitempty" json:"on_failure,omitempty" jsonschema:"description=Fallback steps run when the run fails for good; they see the failure context."`
	DeadLetter  bool              `yaml:"dead_letter,omitempty" json:"dead_letter,omitempty" jsonschema:"description=Keep the input of a run that failed for good (state dead) for routines dlq replay."`
	Value       *Value            `yaml:"value,omitempty" json:"value,omitempty" jsonschema:"description=What a successful run is worth to the team\\, for routines report and the dashboard."`
	Alerts      []Alert           `yaml:"alerts,omitempty" json:"alerts,omitempty" jsonschema:"description=Thresholds on the routine's recent runs that notify Slack or a webhook when crossed\\, and again when they clear (docs/observability.md#alerts)."`
	Tests       []any             `yaml:"tests,omitempty" json:"tests,omitempty" jsonschema:"description=Tests of the routine\\, as tests/*.yaml files hold them\\, run by routines test (docs/testing.md)."`

	// Dir is the directory holding the routine file; File its path. Revision
	// is the content hash of the file. None of them is part of the file.
	Dir      string `yaml:"-" json:"-"`
	File     string `yaml:"-" json:"-"`
	Revision string `yaml:"-" json:"-"`
	// Namespace is the namespace the routine was pushed to (remote mode);
	// "" is the default one. Its runs, events and secrets are that
	// namespace's.
	Namespace string `yaml:"-" json:"-"`
	// Sealed marks a directory that is a pushed revision, shared by every
	// run of it on a worker and read-only: each run works in a private
	// copy of it, so what a step writes there stays the run's.
	Sealed bool `yaml:"-" json:"-"`
	// InputsRead names the inputs the routine's templates read (input.NAME),
	// found by validation: a routine that declares no inputs takes only these.
	InputsRead []string `yaml:"-" json:"-"`
	// Warnings are what validation noticed in the valid file that may not
	// mean what was meant, such as how a six-field cron is read.
	Warnings []Problem `yaml:"-" json:"-"`
}

// Input declares one input of a routine.
type Input struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Default     string `yaml:"default,omitempty" json:"default,omitempty"`
	Required    bool   `yaml:"required,omitempty" json:"required,omitempty"`
}

// Concurrency bounds the runs of a routine across the whole deployment.
type Concurrency struct {
	Max      int `yaml:"max,omitempty" json:"max,omitempty" jsonschema:"minimum=1"`
	Reserved int `yaml:"reserved,omitempty" json:"reserved,omitempty" jsonschema:"minimum=0"`
}

// Value is what a routine's successful run saves, from which routines
// report estimates the time the automation saved.
type Value struct {
	MinutesSavedPerRun float64 `yaml:"minutes_saved_per_run" json:"minutes_saved_per_run" jsonschema:"exclusiveMinimum=0,description=Minutes of manual work one successful run saves\\, such as 5."`
}

// SecretRef names a secret the routine may use and, optionally, the provider
// reference it comes from ("vault:kv/data/slack#bot_token"). In the file it is
// either a bare NAME or a mapping {name, from}.
type SecretRef struct {
	Name string `yaml:"name" json:"name" jsonschema:"pattern=^[A-Z][A-Z0-9_]*$"`
	From string `yaml:"from,omitempty" json:"from,omitempty"`
}

// Permissions widens the sandbox of run steps beyond the project directory,
// which is always readable and writable.
type Permissions struct {
	Read    []string `yaml:"read,omitempty" json:"read,omitempty" jsonschema:"description=Extra paths steps may read."`
	Write   []string `yaml:"write,omitempty" json:"write,omitempty" jsonschema:"description=Extra paths steps may read and write."`
	Network *bool    `yaml:"network,omitempty" json:"network,omitempty" jsonschema:"description=Default true; false runs steps in a network namespace with only loopback: no socket of any protocol reaches beyond the step."`
}

// NetworkAllowed reports whether steps may use the network (the default).
func (p *Permissions) NetworkAllowed() bool {
	return p == nil || p.Network == nil || *p.Network
}

// Limits are resource limits applied to each run step's process.
type Limits struct {
	Memory ByteSize `yaml:"memory,omitempty" json:"memory,omitempty" jsonschema:"description=Address-space limit per step process\\, such as 512MiB."`
	CPU    Duration `yaml:"cpu,omitempty" json:"cpu,omitempty" jsonschema:"description=CPU time limit per step process\\, such as 30s."`
}

// Resources limit the processes of one run step together, enforced by the
// kernel in a cgroup of the step. A step's resources override the
// routine's field by field.
type Resources struct {
	Memory ByteSize `yaml:"memory,omitempty" json:"memory,omitempty" jsonschema:"description=Memory of the step's processes together\\, such as 512Mi; above it the kernel kills the step (error code oom). Default: half the host's memory."`
	Pids   int      `yaml:"pids,omitempty" json:"pids,omitempty" jsonschema:"minimum=1,description=Processes and threads of the step at once; above it fork fails (error code pids_limit). Default 4096."`
	CPU    float64  `yaml:"cpu,omitempty" json:"cpu,omitempty" jsonschema:"exclusiveMinimum=0,description=CPUs' worth of time the step may use\\, such as 1.5. Default: no limit."`
}

// Merge returns r with the fields that o sets taken from o.
func (r *Resources) Merge(o *Resources) *Resources {
	if o == nil {
		return r
	}
	var m Resources
	if r != nil {
		m = *r
	}
	if o.Memory != 0 {
		m.Memory = o.Memory
	}
	if o.Pids != 0 {
		m.Pids = o.Pids
	}
	if o.CPU != 0 {
		m.CPU = o.CPU
	}
	return &m
}

// ShortRevision is the form of a revision people read: its first 12
// characters, as git shows a commit.
func ShortRevision(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
