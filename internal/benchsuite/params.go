// Package benchsuite runs `make bench`: it starts a real `buzon serve` on
// loopback with a temporary data directory and fresh accounts, puts every
// load scenario of package loadgen on it with fixed parameters, and reports
// one table, the targets of issue 6 and a JSON record.
package benchsuite

import (
	"fmt"
	"io"
	"time"
)

// Params are every figure the suite runs with, in one place, so the report
// can state them and a change is one edit.
type Params struct {
	// MsgSize is the size of the ordinary messages in octets (CRLF form).
	MsgSize int `json:"msg_size"`

	// Disk limit: durable writes (write, fsync, rename, fsync dir) of
	// MsgSize octets from DiskWorkers goroutines.
	DiskWorkers int `json:"disk_workers"`
	DiskOps     int `json:"disk_ops"`

	// SMTP: SMTPMessages messages per row, one row per entry of SMTPConns,
	// recipients round-robin over SinkUsers accounts. SMTPTargetConns is
	// the row the throughput and latency targets judge.
	SMTPMessages    int   `json:"smtp_messages"`
	SMTPConns       []int `json:"smtp_conns"`
	SMTPTargetConns int   `json:"smtp_target_conns"`
	SinkUsers       int   `json:"sink_users"`

	// PairRounds splits the disk limit and the SMTPTargetConns row into
	// that many alternating rounds (disk, smtp, disk, smtp…), each row the
	// merge of its rounds: a shared disk's rate drifts within minutes, and
	// the target compares the two, so both must sample the same minutes.
	PairRounds int `json:"pair_rounds"`

	// POP3: POP3Users mailboxes of POP3Messages messages each, filled
	// through SMTP with FillConns connections, read by one client per
	// mailbox, once without pipelining and once with POP3Pipeline RETRs in
	// flight (RFC 2449 PIPELINING).
	POP3Users    int `json:"pop3_users"`
	POP3Messages int `json:"pop3_messages"`
	FillConns    int `json:"fill_conns"`
	POP3Pipeline int `json:"pop3_pipeline"`

	// LargeSize is the one large message, sent by SMTP and read by POP3.
	LargeSize int `json:"large_size"`

	// pop3-list: ListMessages messages of about ListMsgSize octets written
	// straight into one Maildir, then ListSessions sessions of
	// USER/PASS/STAT/LIST/UIDL/QUIT.
	ListMessages int `json:"list_messages"`
	ListMsgSize  int `json:"list_msg_size"`
	ListSessions int `json:"list_sessions"`

	// conns: Conns idle connections, SMTP and POP3 alternating, dialled
	// ConnsParallel at a time and held ConnsHold after the last greeting.
	Conns         int           `json:"conns"`
	ConnsParallel int           `json:"conns_parallel"`
	ConnsHold     time.Duration `json:"conns_hold_ns"`

	// Timeout bounds every single I/O step of a client.
	Timeout time.Duration `json:"timeout_ns"`
}

// DefaultParams are the figures of issue 6 item 2.
func DefaultParams() Params {
	return Params{
		MsgSize:         4096,
		DiskWorkers:     20,
		DiskOps:         2000,
		SMTPMessages:    5000,
		SMTPConns:       []int{1, 20, 50},
		SMTPTargetConns: 20,
		SinkUsers:       20,
		PairRounds:      5,
		POP3Users:       4,
		POP3Messages:    5000,
		FillConns:       20,
		POP3Pipeline:    16,
		LargeSize:       25_000_000,
		ListMessages:    50_000,
		ListMsgSize:     2048,
		ListSessions:    10,
		Conns:           10_000,
		ConnsParallel:   200,
		ConnsHold:       2 * time.Second,
		Timeout:         30 * time.Second,
	}
}

// QuickParams are tiny figures that exercise every step in seconds (tests).
func QuickParams() Params {
	return Params{
		MsgSize:         4096,
		DiskWorkers:     4,
		DiskOps:         40,
		SMTPMessages:    50,
		SMTPConns:       []int{1, 4},
		SMTPTargetConns: 4,
		SinkUsers:       2,
		PairRounds:      2,
		POP3Users:       2,
		POP3Messages:    20,
		FillConns:       4,
		POP3Pipeline:    16,
		LargeSize:       1_000_000,
		ListMessages:    500,
		ListMsgSize:     2048,
		ListSessions:    3,
		Conns:           100,
		ConnsParallel:   50,
		ConnsHold:       200 * time.Millisecond,
		Timeout:         10 * time.Second,
	}
}

// Validate rejects parameters the suite cannot run with.
func (p Params) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"msg_size", p.MsgSize}, {"disk_workers", p.DiskWorkers}, {"disk_ops", p.DiskOps},
		{"smtp_messages", p.SMTPMessages}, {"smtp_target_conns", p.SMTPTargetConns}, {"sink_users", p.SinkUsers},
		{"pair_rounds", p.PairRounds},
		{"pop3_users", p.POP3Users}, {"pop3_messages", p.POP3Messages}, {"fill_conns", p.FillConns},
		{"large_size", p.LargeSize}, {"list_messages", p.ListMessages}, {"list_msg_size", p.ListMsgSize},
		{"list_sessions", p.ListSessions}, {"conns", p.Conns}, {"conns_parallel", p.ConnsParallel},
	}
	for _, x := range pos {
		if x.v <= 0 {
			return fmt.Errorf("bench params: %s must be positive, not %d", x.name, x.v)
		}
	}
	if len(p.SMTPConns) == 0 {
		return fmt.Errorf("bench params: smtp_conns is empty")
	}
	for _, c := range p.SMTPConns {
		if c <= 0 {
			return fmt.Errorf("bench params: smtp_conns holds %d", c)
		}
	}
	if p.PairRounds > p.DiskOps || p.PairRounds > p.SMTPMessages {
		return fmt.Errorf("bench params: pair_rounds %d leaves a round of disk_ops %d or smtp_messages %d empty",
			p.PairRounds, p.DiskOps, p.SMTPMessages)
	}
	if p.ListMsgSize < 512 {
		return fmt.Errorf("bench params: list_msg_size %d is below 512 (the header alone)", p.ListMsgSize)
	}
	return nil
}

// Print writes the parameters as one block of "name value" lines.
func (p Params) Print(w io.Writer) {
	fmt.Fprintf(w, "parameters:\n")
	fmt.Fprintf(w, "  message size                %d B\n", p.MsgSize)
	fmt.Fprintf(w, "  disk limit                  %d durable writes, %d workers\n", p.DiskOps, p.DiskWorkers)
	fmt.Fprintf(w, "  smtp                        %d msgs per row, conns %v, %d recipients round-robin; targets judge c=%d\n",
		p.SMTPMessages, p.SMTPConns, p.SinkUsers, p.SMTPTargetConns)
	fmt.Fprintf(w, "  rounds                      disk limit and smtp c=%d in %d alternating rounds (disk, smtp, disk, ...), run first; each row merges its rounds\n",
		p.SMTPTargetConns, p.PairRounds)
	fmt.Fprintf(w, "  pop3                        %d mailboxes x %d msgs (filled by smtp c=%d), pipeline off and %d\n",
		p.POP3Users, p.POP3Messages, p.FillConns, p.POP3Pipeline)
	fmt.Fprintf(w, "  large message               %d B (smtp, then pop3)\n", p.LargeSize)
	fmt.Fprintf(w, "  pop3-list                   %d msgs of ~%d B (maildir bulk mode), %d sessions\n",
		p.ListMessages, p.ListMsgSize, p.ListSessions)
	fmt.Fprintf(w, "  conns                       %d idle (smtp/pop3 alternating), %d dials at once, held %v\n",
		p.Conns, p.ConnsParallel, p.ConnsHold)
	fmt.Fprintf(w, "  client I/O timeout          %v\n", p.Timeout)
}
