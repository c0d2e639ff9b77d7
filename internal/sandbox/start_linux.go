package sandbox

import "fmt"

// Start calls start, which starts one long-lived child process (such as
// exec.Cmd.Start, or what calls it), on a fresh thread confined by p: the
// child gets p's Landlock domain, no_new_privs and no capabilities, and the
// engine stays unconfined. It is for children that talk to the engine over
// their stdin and stdout while it runs (MCP servers of agent steps); Run
// is for steps. p's memory and CPU limits are not applied. With
// p.Unconfined, start is called as it is.
//
// start runs on a thread that is discarded after: it must only start the
// child, not keep state bound to its thread.
func Start(p *Policy, start func() error) error {
	if p.Unconfined {
		return start()
	}
	ruleset, err := acquireRuleset(p)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer ruleset.release()
	return onStepThread(stepThread{ruleset: ruleset.fd, netns: -1, mountns: -1}, start)
}
