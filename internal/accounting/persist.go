package accounting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"

	"github.com/buzon-mail/buzon/internal/atomicfile"
)

// counters is the content of counters.json: the figures that survive a
// restart. Live counts are not among them: after a restart nothing is open.
// Historic is written for people reading the file; on load it is recomputed
// from the per-protocol figures.
type counters struct {
	Historic          int64 `json:"historic"`
	SMTPHistoric      int64 `json:"smtp_historic"`
	POP3Historic      int64 `json:"pop3_historic"`
	Rejected          int64 `json:"rejected"`
	BytesSent         int64 `json:"bytes_sent"`
	BytesReceived     int64 `json:"bytes_received"`
	MessagesAccepted  int64 `json:"messages_accepted"`
	MessagesDelivered int64 `json:"messages_delivered"`
	MessagesRetrieved int64 `json:"messages_retrieved"`
	MessagesDeleted   int64 `json:"messages_deleted"`
}

func countersOf(s Stats) counters {
	return counters{
		Historic:          s.Historic,
		SMTPHistoric:      s.SMTPHistoric,
		POP3Historic:      s.POP3Historic,
		Rejected:          s.Rejected,
		BytesSent:         s.BytesSent,
		BytesReceived:     s.BytesReceived,
		MessagesAccepted:  s.MessagesAccepted,
		MessagesDelivered: s.MessagesDelivered,
		MessagesRetrieved: s.MessagesRetrieved,
		MessagesDeleted:   s.MessagesDeleted,
	}
}

// loadCounters reads path; a missing or empty file is all zeros. A file that
// is not valid JSON is an error (it is only ever replaced whole, so it is not
// a torn write but a hand edit; removing it resets the counters).
func loadCounters(path string) (counters, error) {
	var c counters
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read counters: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return counters{}, fmt.Errorf("parse counters %s: %w (remove the file to reset the counters)", path, err)
	}
	for _, v := range []int64{c.SMTPHistoric, c.POP3Historic, c.Rejected, c.BytesSent, c.BytesReceived,
		c.MessagesAccepted, c.MessagesDelivered, c.MessagesRetrieved, c.MessagesDeleted} {
		if v < 0 {
			return counters{}, fmt.Errorf("parse counters %s: negative value (remove the file to reset the counters)", path)
		}
	}
	if c.SMTPHistoric > math.MaxInt64-c.POP3Historic {
		return counters{}, fmt.Errorf("parse counters %s: historic counts overflow (remove the file to reset the counters)", path)
	}
	return c, nil
}

// saveCounters replaces path with c through atomicfile (temp file in the
// same directory, fsync, rename over path, fsync of the directory): once it
// returns nil the figures survive a crash, and a crash at any moment leaves
// either the old or the new file whole.
func saveCounters(path string, c counters) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode counters: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save counters: %w", err)
	}
	return nil
}
