// Package accounting counts and limits the client connections of every
// listener: historic, live and rejected connections per protocol, raw socket
// bytes, and message counters, as SPEC §7 defines them. It enforces
// limits.max_connections, limits.max_connections_per_ip and the MGMT pause by
// handing a refused connection to a protocol-specific refusal.
package accounting

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/buzon-mail/buzon/internal/pause"
)

// Proto names the protocol a listener serves.
type Proto int

const (
	SMTP Proto = iota
	POP3
	// MGMT connections count only in Stats.MGMTLive; they are not subject to
	// the mail limits or the pause, and their bytes are not counted.
	MGMT
)

func (p Proto) String() string {
	switch p {
	case SMTP:
		return "smtp"
	case POP3:
		return "pop3"
	case MGMT:
		return "mgmt"
	}
	return "unknown"
}

// Reason says why a connection was refused.
type Reason int

const (
	// LimitReached: limits.max_connections or limits.max_connections_per_ip.
	LimitReached Reason = iota + 1
	// Paused: the MGMT pause (TIMEOUT) is active.
	Paused
)

// Refuser writes the protocol's refusal to a refused connection, e.g.
// SMTP "421 4.7.0 ..." (LimitReached) / "421 4.3.2 ..." (Paused), POP3
// "-ERR [SYS/TEMP] ...". The accountant closes the connection afterwards.
type Refuser func(w io.Writer, why Reason)

// ListenerOptions configure one accounted listener.
type ListenerOptions struct {
	Proto  Proto
	Refuse Refuser
	// TLS, when set, marks an implicit-TLS listener: a refused connection is
	// refused after the handshake. Admitted connections are returned raw; the
	// caller wraps the accounting listener with tls.NewListener itself, so the
	// protocol server still sees a *tls.Conn.
	TLS *tls.Config
	// MaxLive bounds live connections of this listener's protocol (used for
	// MGMT's 16 sessions); 0 means no extra bound.
	MaxLive int
}

// Options configure an Accountant.
type Options struct {
	// StatePath is the file the persistent counters are loaded from and saved
	// to (data_dir/counters.json). Empty: nothing persisted.
	StatePath string
	// MaxConnections and MaxPerIP are read at every accept, so changes made
	// at run time (MGMT MAX_CONNEC, SIGHUP) apply to the next connection.
	MaxConnections func() int
	MaxPerIP       func() int
	Pause          *pause.Gate
	Logger         *slog.Logger
}

// Stats is a snapshot of every figure MGMT reports.
type Stats struct {
	Historic, Live, Rejected int64 // SMTP+POP3
	BytesSent, BytesReceived int64 // SMTP+POP3 raw socket bytes
	SMTPHistoric, SMTPLive   int64
	POP3Historic, POP3Live   int64
	MGMTLive                 int64
	MessagesAccepted         int64 // SMTP transactions answered 250
	MessagesDelivered        int64 // recipient copies
	MessagesRetrieved        int64 // POP3 RETR completed
	MessagesDeleted          int64 // POP3 deletions applied at QUIT
	Started                  time.Time
}

// Accountant is safe for concurrent use.
type Accountant struct {
}

// New loads the persisted counters (if any) and returns an Accountant.
func New(opts Options) (*Accountant, error) {
	panic("unimplemented")
}

// Listener wraps a raw TCP listener. Accept returns only admitted
// connections; each counts its bytes and leaves the live count exactly once
// when closed. Refusals happen on their own goroutines so Accept is never
// blocked by a slow refused client.
func (a *Accountant) Listener(l net.Listener, opts ListenerOptions) net.Listener {
	panic("unimplemented")
}

// Snapshot returns the current figures.
func (a *Accountant) Snapshot() Stats { panic("unimplemented") }

// Message counters, called by the protocol servers.
func (a *Accountant) AddAccepted(n int64)  {}
func (a *Accountant) AddDelivered(n int64) {}
func (a *Accountant) AddRetrieved(n int64) {}
func (a *Accountant) AddDeleted(n int64)   {}

// Run saves the counters every 10 s until ctx ends, then saves once more.
func (a *Accountant) Run(ctx context.Context) error { panic("unimplemented") }

// Save writes the persistent counters atomically now.
func (a *Accountant) Save() error { panic("unimplemented") }
