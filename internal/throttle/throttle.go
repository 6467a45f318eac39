// Package throttle slows down and finally cuts off clients that keep failing
// to authenticate. Failures are counted per client IP address across
// sessions and protocols (SMTP, POP3 and MGMT share one Throttle).
//
// The key is the IP address without the port. An IPv4 address (also in its
// IPv4-mapped IPv6 form) is its own key; an IPv6 address is keyed by its /64
// prefix, because one IPv6 host usually owns a whole /64 and could otherwise
// start over with a fresh address for every attempt.
//
// The n-th failure of a key waits BaseDelay·2^(n-1), at most MaxDelay. From
// the CloseAfter-th failure on, the session is closed and Blocked reports
// true. A key's failures are forgotten once it has been quiet for Window
// (or on Success). Memory is bounded: at most MaxEntries keys are
// remembered; when full, the key whose last failure is the oldest is
// dropped first.
package throttle

import (
	"container/list"
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Options tune the throttle. Zero values take the defaults noted.
type Options struct {
	BaseDelay  time.Duration // delay after the first failure (default 1s)
	MaxDelay   time.Duration // cap of the growing delay (default 15s)
	CloseAfter int           // failures from one address within Window after which sessions are closed (default 10)
	Window     time.Duration // how long a failure is remembered (default 15m)
	MaxEntries int           // addresses remembered at most (default 100000)
}

// Throttle is safe for concurrent use.
type Throttle struct {
	opts Options
	now  func() time.Time // the clock; tests replace it

	mu      sync.Mutex
	entries map[netip.Prefix]*list.Element // of *entry
	order   *list.List                     // *entry, oldest last failure first
}

type entry struct {
	key      netip.Prefix
	failures int
	last     time.Time
}

func New(opts Options) *Throttle {
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = time.Second
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 15 * time.Second
	}
	if opts.MaxDelay < opts.BaseDelay {
		opts.MaxDelay = opts.BaseDelay
	}
	if opts.CloseAfter <= 0 {
		opts.CloseAfter = 10
	}
	if opts.Window <= 0 {
		opts.Window = 15 * time.Minute
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100000
	}
	return &Throttle{
		opts:    opts,
		now:     time.Now,
		entries: make(map[netip.Prefix]*list.Element),
		order:   list.New(),
	}
}

// keyOf returns the throttle key of addr. Addresses without an IP (not
// expected from TCP listeners) all share the zero key.
func keyOf(addr net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		} else if p, err := netip.ParseAddr(a.String()); err == nil {
			ip = p
		}
	}
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// delay is the wait due after the n-th failure.
func (t *Throttle) delay(n int) time.Duration {
	d := t.opts.BaseDelay
	for i := 1; i < n; i++ {
		d *= 2
		if d >= t.opts.MaxDelay {
			return t.opts.MaxDelay
		}
	}
	return min(d, t.opts.MaxDelay)
}

// pruneLocked forgets the keys quiet for Window; the list is ordered by last
// failure, so it stops at the first key still remembered.
func (t *Throttle) pruneLocked(now time.Time) {
	for e := t.order.Front(); e != nil; e = t.order.Front() {
		en := e.Value.(*entry)
		if now.Sub(en.last) < t.opts.Window {
			return
		}
		t.order.Remove(e)
		delete(t.entries, en.key)
	}
}

// Failure records a failed login from addr (its IP is the key), waits the
// delay due (returning early if ctx ends) and reports whether the session
// should now be closed because the address has failed too often. The delay
// is waited also when the session is to be closed, so that the refusal comes
// no faster than any other failure reply.
func (t *Throttle) Failure(ctx context.Context, addr net.Addr) (closeSession bool) {
	key := keyOf(addr)
	now := t.now()
	t.mu.Lock()
	t.pruneLocked(now)
	var en *entry
	if e, ok := t.entries[key]; ok {
		en = e.Value.(*entry)
		t.order.MoveToBack(e)
	} else {
		for len(t.entries) >= t.opts.MaxEntries {
			old := t.order.Front()
			t.order.Remove(old)
			delete(t.entries, old.Value.(*entry).key)
		}
		en = &entry{key: key}
		t.entries[key] = t.order.PushBack(en)
	}
	en.failures++
	en.last = now
	n := en.failures
	t.mu.Unlock()

	closeSession = n >= t.opts.CloseAfter
	timer := time.NewTimer(t.delay(n))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	return closeSession
}

// Blocked reports whether addr has failed too often and should not even be
// allowed to try now.
func (t *Throttle) Blocked(addr net.Addr) bool {
	key := keyOf(addr)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok {
		return false
	}
	en := e.Value.(*entry)
	return en.failures >= t.opts.CloseAfter && now.Sub(en.last) < t.opts.Window
}

// Success forgets the failures of addr.
func (t *Throttle) Success(addr net.Addr) {
	key := keyOf(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[key]; ok {
		t.order.Remove(e)
		delete(t.entries, key)
	}
}

// Len is the number of addresses remembered now.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
