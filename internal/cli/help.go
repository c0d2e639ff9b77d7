package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// docsURL is where the documentation is read from an installed binary,
// which has no docs/ next to it.
const docsURL = "https://github.com/routines-dev/routines/tree/main/docs"

// exitCodesKey is the annotation holding a command's exit codes, which
// help prints in a section of their own.
const exitCodesKey = "exit-codes"

// commandHelp is the part of a command's help that every command has:
// examples to copy, and what its exit codes mean.
type commandHelp struct {
	example string
	exits   string
}

// Exit codes that several commands share.
const (
	exitsList = "  0  listed (an empty list too)\n" +
		"  1  the store could not be read\n" +
		"  2  bad flags, or no store in the project yet"
	// exitsProfile is what --profile adds to the exit codes of a command
	// that acts on a profile's server.
	exitsProfile = "\n  2  (with --profile) an unknown or unsafe profile, or a server that does not answer or refuses the token"
	exitsRunning = "  0    the run succeeded\n" +
		"  1    the run failed (or is dead)\n" +
		"  2    invalid routine, input or flags, or its run steps cannot be confined: nothing ran\n" +
		"  130  the run was cancelled (Ctrl-C)"
	exitsGroup = "  2  no command given: name one of those above"
	exitsPrint = "  0  printed"
	// exitsTeams is what a command against a server's tokens adds.
	exitsTeams = "\n  2  no server named, bad flags, or the token may not do it (401, 403)"
)

// helpTable holds the examples and exit codes of every command, by
// command path, in one place so that they read alike and a command
// without them is found (TestEveryCommandHasExamplesAndExitCodes).
var helpTable = map[string]commandHelp{
	"routines": {
		example: "  routines init hello && routines run-once hello   # a first routine, run now\n" +
			"  routines serve                                  # the daemon: triggers, webhooks, the API\n" +
			"  routines push --server URL                      # push routines to a deployment (routines server)\n" +
			"  routines show last                              # what the newest run did\n" +
			"  routines help run-once                          # help on one command",
		exits: "  0    success\n  1    a run or the command failed\n  2    bad input (routine, flags, arguments): nothing ran\n  130  cancelled (Ctrl-C)",
	},
	"routines init": {
		example: "  routines init hello            # creates hello/routine.yaml, named hello\n" +
			"  routines init .                # in the current (empty) directory",
		exits: "  0  created\n  1  a file could not be written\n  2  DIR already holds a routine.yaml, or its name cannot name a routine",
	},
	"routines validate": {
		example: "  routines validate                   # the routine.yaml here\n" +
			"  routines validate hello/routine.yaml\n" +
			"  routines validate hello -o json     # problems as JSON, for editors and CI",
		exits: "  0  valid\n  2  invalid (every problem is printed), or not found",
	},
	"routines run-once": {
		example: "  routines run-once                    # the routine.yaml here\n" +
			"  routines run-once hello -i who=team  # by name, with an input\n" +
			"  routines run-once ./hello -o json    # the run as JSON on stdout, its output on stderr",
		exits: exitsRunning,
	},
	"routines runs": {
		example: "  routines runs                          # the 50 newest runs\n" +
			"  routines runs --state failed,dead --since 7d\n" +
			"  routines runs --routine hello -o json",
		exits: exitsList + exitsProfile,
	},
	"routines show": {
		example: "  routines show last           # the newest run\n" +
			"  routines show -2             # the one before\n" +
			"  routines show 01JD3K -o json # by a unique prefix of its id",
		exits: "  0  shown\n  1  the store could not be read\n  2  no such run (or the prefix is ambiguous: the candidates are listed)" + exitsProfile,
	},
	"routines logs": {
		example: "  routines logs last               # the newest run's lines\n" +
			"  routines logs -1 --step greet    # one step's\n" +
			"  routines logs -f 01JD3K          # follow a live run to its end",
		exits: "  0    printed; with -f, the run succeeded\n" +
			"  1    with -f, the run failed (or is dead), or the daemon stopped streaming it\n" +
			"  2    no such run; with -f, a run not finished and no daemon to follow it from\n" +
			"  130  with -f, the run was cancelled" + exitsProfile,
	},
	"routines dlq": {
		example: "  routines dlq list\n  routines dlq replay last",
		exits:   exitsGroup,
	},
	"routines dlq list": {
		example: "  routines dlq list\n  routines dlq list --since 1d -o json",
		exits:   exitsList + exitsProfile,
	},
	"routines alerts": {
		example: "  routines alerts\n  routines alerts --since 24h\n  routines alerts --routine nightly -o json",
		exits:   exitsList + exitsProfile,
	},
	"routines dlq replay": {
		example: "  routines dlq replay last     # the newest dead run\n" +
			"  routines dlq replay 01JD3K",
		exits: exitsRunning + "\n  2    (also) the run is not dead, or no such run" + exitsProfile,
	},
	"routines stats": {
		example: "  routines stats                          # every routine, the last 24 hours\n" +
			"  routines stats --routine nightly --since 7d\n" +
			"  routines --profile prod stats -o json   # the server's",
		exits: exitsList + exitsProfile,
	},
	"routines report": {
		example: "  routines report                                 # the last 90 days, as a table\n" +
			"  routines report --since 30d -o html --out value.html\n" +
			"  routines --profile prod report -o json",
		exits: exitsList + "\n  1  (also) the --out file could not be written" + exitsProfile,
	},
	"routines costs": {
		example: "  routines costs                                   # by routine, the last 30 days\n" +
			"  routines costs --by tag --since 7d -o json\n" +
			"  routines costs --price-cpu-second 0.00002 --price-tokens claude-sonnet-4=3/15\n" +
			"  routines --profile prod costs --by tag           # the server's, at its rates and budgets",
		exits: exitsList + "\n  2  (also) a bad price, budget or costs file" + exitsProfile,
	},
	"routines schema": {
		example: "  routines schema > routine.schema.json",
		exits:   exitsPrint,
	},
	"routines serve": {
		example: "  routines serve                         # the routines under this directory\n" +
			"  routines serve examples/hello --addr 127.0.0.1:8080\n" +
			"  ROUTINES_TOKEN=… routines serve --addr :7070 --grace 1m",
		exits: "  0  stopped by SIGTERM or Ctrl-C\n  1  the daemon failed (could not listen, the store failed)\n  2  an invalid routine or flag: nothing started",
	},
	"routines server": {
		example: "  routines server --db postgres://routines@db:5432/routines --addr :7070\n" +
			"  ROUTINES_DB=… ROUTINES_TOKEN=… routines server --workers 8   # also execute runs",
		exits: "  0  stopped by SIGTERM or Ctrl-C\n  1  the server failed (could not listen, the store failed)\n  2  bad flags or no --db: nothing started",
	},
	"routines worker": {
		example: "  routines worker --db postgres://routines@db:5432/routines --slots 16\n" +
			"  routines worker --db … --region eu-west --labels gpu   # also runs routines with region: eu-west, labels: [gpu]",
		exits: "  0  stopped by SIGTERM or Ctrl-C (running runs finished or went back to the queue)\n  1  the worker failed (the store failed)\n  2  bad flags, no --db, or run steps cannot be confined here",
	},
	"routines push": {
		example: "  routines push --server https://routines.example.com -m \"retry the CRM twice\"\n" +
			"  ROUTINES_SERVER=… routines push examples/hello",
		exits: "  0  pushed (or unchanged)\n  1  the server failed\n  2  an invalid routine (nothing pushed), a refused bundle, or no server answers",
	},
	"routines revisions": {
		example: "  routines revisions support-triage --server https://routines.example.com",
		exits:   "  0  listed\n  1  the server failed\n  2  no such routine, or no server answers",
	},
	"routines rollback": {
		example: "  routines rollback support-triage 3f2a9c1b7d4e -m \"the new prompt misfiles refunds\"",
		exits:   "  0  rolled back\n  1  the server failed\n  2  no such routine or revision (or it is current already), or no server answers",
	},
	"routines diff": {
		example: "  routines diff support-triage 3f2a9c1b7d4e              # against the current revision\n" +
			"  routines diff support-triage 3f2a9c1b7d4e 9e8d7c6b5a4f",
		exits: "  0  printed (nothing when the revisions hold the same files)\n  1  the server failed\n  2  no such routine or revision, or no server answers",
	},
	"routines invoke": {
		example: "  routines invoke hello                  # queue a run and return\n" +
			"  routines invoke hello -i who=team --wait  # show its output live, exit with its state",
		exits: "  0    queued; with --wait, the run succeeded\n" +
			"  1    the daemon failed; with --wait, the run failed (or is dead)\n" +
			"  2    bad input, no such routine, or no daemon running for the project\n" +
			"  130  with --wait, the run was cancelled" + exitsProfile,
	},
	"routines cancel": {
		example: "  routines cancel 01JD3K              # wait up to 30s for it to end cancelled\n" +
			"  routines cancel 01JD3K --wait 0     # return once the cancel is requested\n" +
			"  routines --profile prod cancel 01JD3K -o json",
		exits: "  0  cancelled, or its cancel requested and still under way after --wait\n" +
			"  1  the daemon failed, or the run ended otherwise before the cancel took effect\n" +
			"  2  no such run, a run that already ended, or no daemon running for the project" + exitsProfile,
	},
	"routines rerun": {
		example: "  routines rerun 01JD3K              # queue a new run with its input and payload\n" +
			"  routines rerun 01JD3K --wait       # show its output live, exit with its state",
		exits: "  0    queued; with --wait, the run succeeded\n" +
			"  1    the daemon failed; with --wait, the run failed (or is dead)\n" +
			"  2    no such run, a run that has not ended, its routine no longer served, or no daemon running for the project\n" +
			"  130  with --wait, the run was cancelled" + exitsProfile,
	},
	"routines emit": {
		example: "  routines emit order.paid -d '{\"id\": 42}'\n  routines emit order.paid -d '{\"id\": 42}' --dedupe 42",
		exits:   "  0  published (to no listener too)\n  1  the daemon failed\n  2  bad input, or no daemon running for the project" + exitsProfile,
	},
	"routines login": {
		example: "  routines login https://routines.example.com     # the token from $ROUTINES_TOKEN, or typed (not echoed)\n" +
			"  printf %s \"$TOKEN\" | routines login https://routines.example.com --profile prod\n" +
			"  routines --profile prod runs                      # then act on that server",
		exits: "  0  checked and saved\n  1  the profiles file could not be written\n" +
			"  2  a bad URL or profile name, nothing answers at URL, it refuses the token, or the profiles file is unsafe (a link, or open to others)",
	},
	"routines logout": {
		example: "  routines logout                 # the profile named default\n  routines logout --profile prod",
		exits:   "  0  removed\n  1  the profiles file could not be written\n  2  no such profile, or the profiles file is unsafe",
	},
	"routines secrets": {
		example: "  routines secrets set API_TOKEN\n  routines secrets list",
		exits:   exitsGroup,
	},
	"routines secrets set": {
		example: "  routines secrets set API_TOKEN                  # type or paste it; not echoed\n" +
			"  printf %s \"$TOKEN\" | routines secrets set API_TOKEN\n" +
			"  routines secrets set TLS_KEY --from-file key.pem",
		exits: "  0  stored\n  1  the vault could not be opened or written\n  2  a bad name, an empty or too long value" + exitsProfile,
	},
	"routines secrets list": {
		example: "  routines secrets list\n  routines secrets list -o json",
		exits:   exitsList + exitsProfile,
	},
	"routines secrets rm": {
		example: "  routines secrets rm API_TOKEN",
		exits:   "  0  removed\n  1  the vault could not be written\n  2  no such secret" + exitsProfile,
	},
	"routines audit": {
		example: "  routines audit --server URL --since 7d --actor ci   # a server's trail of actions\n" +
			"  routines audit --since 1d                           # the local project's log of secrets\n" +
			"  routines audit --secret API_TOKEN -o json",
		exits: exitsList + exitsTeams,
	},
	"routines tokens": {
		example: "  routines tokens create --name ci --role deployer --namespace team-a --expires 90d\n  routines tokens list",
		exits:   exitsGroup,
	},
	"routines tokens create": {
		example: "  routines tokens create --name ci --role deployer --namespace team-a --expires 90d\n" +
			"  routines tokens create --name grafana --role viewer   # of your namespace, until revoked",
		exits: "  0  created: the value is on stdout, this once\n  1  the server failed" + exitsTeams,
	},
	"routines tokens list": {
		example: "  routines tokens list\n  routines tokens list -o json",
		exits:   exitsList + exitsTeams,
	},
	"routines tokens revoke": {
		example: "  routines tokens revoke ci\n  routines tokens revoke 01JEB2Y5T0Z6Q9K3M8N4R7V2WX",
		exits:   "  0  revoked (or revoked already)\n  1  no such token, or the server failed" + exitsTeams,
	},
	"routines namespaces": {
		example: "  routines namespaces set team-eu --regions eu-west,eu-central\n  routines namespaces list",
		exits:   exitsGroup,
	},
	"routines namespaces list": {
		example: "  routines namespaces list\n  routines namespaces list -o json",
		exits:   exitsList + exitsTeams,
	},
	"routines namespaces set": {
		example: "  routines namespaces set team-eu --regions eu-west,eu-central\n" +
			"  routines namespaces set team-eu --regions ''   # any region again",
		exits: "  0  set\n  1  a routine of the namespace asks for another region, or the server failed" + exitsTeams,
	},
	"routines prune": {
		example: "  routines prune --dry-run          # what the retention would delete now\n" +
			"  routines prune                    # delete it, and give the space back\n" +
			"  routines prune --dead-letters     # also empty the dead-letter queue",
		exits: "  0  pruned (or counted, with --dry-run)\n  1  the store could not be read or written\n  2  routines.project.yaml has problems, or no store in the project yet",
	},
	"routines classify": {
		example: "  routines classify train tickets.csv\n  routines classify eval tickets.csv",
		exits:   exitsGroup,
	},
	"routines classify train": {
		example: "  routines classify train tickets.csv             # writes tickets.csv.model.json\n" +
			"  routines classify train tickets.csv -m model.json",
		exits: "  0  the model was written\n  1  it could not be written\n  2  the CSV is missing or malformed",
	},
	"routines classify eval": {
		example: "  routines classify eval tickets.csv --split 0.3 --seed 7",
		exits:   "  0  reported\n  2  the CSV is missing or malformed, or too small to split",
	},
	"routines test": {
		example: "  routines test                     # the tests of every routine under here\n" +
			"  routines test hello -run greet -v\n" +
			"  routines test -o junit > junit.xml\n" +
			"  routines test --record last       # a test made from the newest run",
		exits: "  0  every test passed (or there are none)\n  1  a test failed\n  2  a routine or test file is invalid",
	},
	"routines status": {
		example: "  routines status                          # the project here: store, vault, daemon, routines\n" +
			"  routines status --project ~/ops -o json  # as one JSON object",
		exits: "  0  shown, whatever the daemon's state\n  1  the project could not be read" + exitsProfile,
	},
	"routines doctor": {
		example: "  routines doctor\n  routines doctor --quick                   # quick_check of a big store\n  routines doctor -o json",
		exits:   "  0  every sandbox layer is active and the store is sound\n  1  a layer is missing, or the store is damaged or of a newer schema (the fix is printed)",
	},
	"routines backup": {
		example: "  routines backup /srv/backups/state-$(date +%F).db\n" +
			"  cd /srv/backups && sha256sum -c state-2026-12-04.db.sha256   # check one later, without routines",
		exits: "  0  written\n  1  the store could not be read or FILE written\n  2  no store in the project, FILE is the store, or --profile",
	},
	"routines restore": {
		example: "  routines restore /srv/backups/state-2026-12-04.db            # the daemon stopped\n" +
			"  routines restore backup.db --project ~/ops-copy              # into another project",
		exits: "  0  restored\n  1  FILE refused (checksum, integrity, newer schema) or the store not replaced: nothing changed\n  2  a daemon serves the project, or --profile",
	},
	"routines completion": {
		example: "  source <(routines completion bash)    # in ~/.bashrc\n" +
			"  routines completion zsh > \"${fpath[1]}/_routines\"\n" +
			"  routines completion fish > ~/.config/fish/completions/routines.fish",
		exits: exitsGroup,
	},
	"routines completion bash": {
		example: "  source <(routines completion bash)\n  routines completion bash > /etc/bash_completion.d/routines",
		exits:   exitsPrint,
	},
	"routines completion zsh": {
		example: "  routines completion zsh > \"${fpath[1]}/_routines\"",
		exits:   exitsPrint,
	},
	"routines completion fish": {
		example: "  routines completion fish > ~/.config/fish/completions/routines.fish",
		exits:   exitsPrint,
	},
	"routines completion powershell": {
		example: "  routines completion powershell | Out-String | Invoke-Expression",
		exits:   exitsPrint,
	},
	"routines help": {
		example: "  routines help\n  routines help logs",
		exits:   exitsPrint,
	},
}

// addHelp gives every command its examples and exit codes from
// helpTable, and help a section for the exit codes.
func addHelp(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		h, ok := helpTable[c.CommandPath()]
		if !ok {
			return // the test names it
		}
		c.Example = h.example
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[exitCodesKey] = h.exits
	})
	const anchor = "{{if .HasHelpSubCommands}}"
	tmpl := root.UsageTemplate()
	if !strings.Contains(tmpl, anchor) {
		panic(fmt.Sprintf("cobra's usage template has no %s: place the exit codes anew", anchor))
	}
	root.SetUsageTemplate(strings.Replace(tmpl, anchor,
		`{{with index .Annotations "`+exitCodesKey+`"}}

Exit codes:
{{.}}{{end}}`+anchor, 1))
}
