package maildir

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkOpenRead4K is RETR's file path for a 4 KiB message: find the
// file by id, open it, read it to the end in 32 KiB reads, close it.
func BenchmarkOpenRead4K(b *testing.B) {
	s := newStore(b, nil, "u")
	bt, err := s.Batch("u")
	if err != nil {
		b.Fatal(err)
	}
	for range 1000 {
		if _, err := bt.Add(bytes.NewReader(message4K)); err != nil {
			b.Fatal(err)
		}
	}
	if err := bt.Close(); err != nil {
		b.Fatal(err)
	}
	m, _ := s.Maildir("u")
	list, err := m.List()
	if err != nil {
		b.Fatal(err)
	}
	id := list[500].ID
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(message4K)))
	b.ReportAllocs()
	for b.Loop() {
		rc, err := m.Open(id)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := rc.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		rc.Close()
	}
}
