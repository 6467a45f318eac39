// Package throttle slows down and finally cuts off clients that keep failing
// to authenticate. Failures are counted per client IP address across
// sessions and protocols (SMTP, POP3 and MGMT share one Throttle).
package throttle

import (
	"context"
	"net"
	"time"
)

// Options tune the throttle. Zero values take the defaults noted.
type Options struct {
	BaseDelay  time.Duration // delay after the first failure (default 1s)
	MaxDelay   time.Duration // cap of the growing delay (default 15s)
	CloseAfter int           // failures from one address within Window after which sessions are closed (default 10)
	Window     time.Duration // how long a failure is remembered (default 15m)
}

// Throttle is safe for concurrent use.
type Throttle struct {
}

func New(opts Options) *Throttle { panic("unimplemented") }

// Failure records a failed login from addr (its IP is the key), waits the
// delay due (returning early if ctx ends) and reports whether the session
// should now be closed because the address has failed too often.
func (t *Throttle) Failure(ctx context.Context, addr net.Addr) (closeSession bool) {
	panic("unimplemented")
}

// Blocked reports whether addr has failed too often and should not even be
// allowed to try now.
func (t *Throttle) Blocked(addr net.Addr) bool { panic("unimplemented") }

// Success forgets the failures of addr.
func (t *Throttle) Success(addr net.Addr) { panic("unimplemented") }
