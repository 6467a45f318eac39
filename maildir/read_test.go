package maildir

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// TestOpenReadsAndCloses: the reader Open returns gives the stored octets
// whatever the read size, reports EOF, and refuses use after Close.
func TestOpenReadsAndCloses(t *testing.T) {
	s := newStore(t, nil, "u")
	bt, err := s.Batch("u")
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: x\r\n\r\n" + strings.Repeat("line\r\n", 20000) // > 64 KiB
	if _, err := bt.Add(strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := bt.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Maildir("u")
	list, err := m.List()
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	stored := strings.ReplaceAll(body, "\r\n", "\n")
	rc, err := m.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := iotest.TestReader(rc, []byte(stored)); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d %v", n, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 8)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := rc.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}

	// Large reads see the whole file too.
	rc, err = m.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := io.CopyBuffer(&got, rc, make([]byte, 1<<20)); err != nil || got.String() != stored {
		t.Fatalf("read %d octets, %v", got.Len(), err)
	}
}

// TestOpenReadError: a missing id is ErrNotFound; a read error
// (here, a directory in place of the file) carries the path.
func TestOpenReadError(t *testing.T) {
	s := newStore(t, nil, "u")
	m, _ := s.Maildir("u")
	if _, err := m.Open("1700000000.M1P1.nowhere"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	fd, err := openRead(m.Dir() + "/new")
	if err != nil {
		t.Fatal(err)
	}
	f := &msgFile{fd: fd, path: m.Dir() + "/new"}
	defer f.Close()
	_, err = f.Read(make([]byte, 16))
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Op != "read" || pe.Path != m.Dir()+"/new" {
		t.Fatalf("read of a directory: %v", err)
	}
}
