package benchsuite

import (
	"fmt"
	"syscall"
)

// fdMargin is the descriptors beyond one per connection that the server
// and the suite need: listeners, log, Maildir files, the Go runtime.
const fdMargin = 256

// raiseNOFILE sets the soft RLIMIT_NOFILE to the hard limit. Calling
// Setrlimit explicitly matters: the Go runtime raises its own soft limit at
// start but restores the original one in children it starts, unless the
// program has set the limit itself; this way `buzon serve` inherits it. It
// returns a warning when the hard limit is below what conns connections
// need on each side.
func raiseNOFILE(conns int) (string, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return "", fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return "", fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	if need := uint64(conns + fdMargin); lim.Max < need {
		return fmt.Sprintf("the hard file-descriptor limit (ulimit -Hn) is %d, below the %d the conns scenario needs "+
			"(%d connections + %d); raise it (e.g. in /etc/security/limits.conf) or expect conns to fail",
			lim.Max, need, conns, fdMargin), nil
	}
	return "", nil
}
