package maildir

import (
	"bytes"
	"strings"
	"testing"
)

// message4K is a 4 KiB message with CRLF line ends, as SMTP hands it over.
var message4K = func() []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n")
	for b.Len() < 4096-80 {
		b.WriteString(strings.Repeat("x", 76) + "\r\n")
	}
	return b.Bytes()
}()

// BenchmarkDeliver is one durable delivery (write, fsync, rename, fsync
// new/) of a 4 KiB message: bounded by the disk's fsync latency.
func BenchmarkDeliver(b *testing.B) {
	s := newStore(b, nil, "u")
	b.SetBytes(int64(len(message4K)))
	for b.Loop() {
		d, err := s.Begin("u")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Write(message4K); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatch is the bulk mode: per message cost of a batch of 1,000.
func BenchmarkBatch(b *testing.B) {
	s := newStore(b, nil, "u")
	b.SetBytes(int64(len(message4K)))
	var bt *Batch
	n := 0
	for b.Loop() {
		if bt == nil {
			var err error
			if bt, err = s.Batch("u"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := bt.Add(bytes.NewReader(message4K)); err != nil {
			b.Fatal(err)
		}
		if n++; n%1000 == 0 {
			if err := bt.Close(); err != nil {
				b.Fatal(err)
			}
			bt = nil
		}
	}
	if bt != nil {
		if err := bt.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList lists a 50,000-message Maildir (names only, no stat).
func BenchmarkList(b *testing.B) {
	const n = 50000
	s := newStore(b, nil, "u")
	bt, err := s.Batch("u")
	if err != nil {
		b.Fatal(err)
	}
	small := []byte("Subject: x\r\n\r\nbody\r\n")
	for range n {
		if _, err := bt.Add(bytes.NewReader(small)); err != nil {
			b.Fatal(err)
		}
	}
	if err := bt.Close(); err != nil {
		b.Fatal(err)
	}
	m, _ := s.Maildir("u")
	b.ResetTimer()
	for b.Loop() {
		list, err := m.List()
		if err != nil || len(list) != n {
			b.Fatal(len(list), err)
		}
	}
}
