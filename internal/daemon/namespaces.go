package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/routines-dev/routines/internal/scheduler"
	"github.com/routines-dev/routines/internal/store"
)

// NamespacePoll is how often a daemon that executes runs reads the
// ceilings of namespaces again: a `routines namespaces set --max-running`
// holds on every worker within it.
const NamespacePoll = 5 * time.Second

// NamespaceCeilings is the service that keeps the ceilings of namespaces
// (max_running) in catalog in step with the namespaces' policies in st:
// read at start, then every NamespacePoll. The claims of the scheduler
// that serves catalog keep within them.
func NamespaceCeilings(st store.Teams, catalog *scheduler.Catalog, logger *slog.Logger) *Poller {
	return &Poller{Poll: NamespacePoll, Logger: logger,
		Failed: "read the ceilings of namespaces; the ones read before hold", Recovered: "ceilings of namespaces read again",
		Sync: func(ctx context.Context) error {
			list, err := st.NamespaceList(ctx)
			if err != nil {
				return fmt.Errorf("read the ceilings of namespaces: %w", err)
			}
			ceilings := map[string]int{}
			for _, ns := range list {
				if ns.MaxRunning > 0 {
					ceilings[ns.Name] = ns.MaxRunning
				}
			}
			catalog.SetNamespaceCeilings(ceilings)
			return nil
		},
	}
}
