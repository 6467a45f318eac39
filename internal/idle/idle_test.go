package idle

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close(); client.Close() })
	return r.c, client
}

func TestIdleReadIsCutOff(t *testing.T) {
	s, _ := pair(t)
	c := New(s, 50*time.Millisecond)
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("cut off after %v, before the timeout", el)
	}
}

// An active slow client keeps each read within the timeout and is never cut
// off, although the whole transfer lasts many times the timeout.
func TestSlowActiveWriterSurvives(t *testing.T) {
	s, cl := pair(t)
	const timeout = 200 * time.Millisecond
	c := New(s, timeout)
	const chunks = 12 // ~12 × 40 ms ≈ 2.4 × timeout
	go func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for range chunks {
			<-tick.C
			if _, err := cl.Write([]byte("x")); err != nil {
				return
			}
		}
		// Then go silent: the server must cut off this inactive peer.
	}()
	start := time.Now()
	buf := make([]byte, 16)
	got := 0
	for got < chunks {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("active peer cut off after %d bytes, %v: %v", got, time.Since(start), err)
		}
		got += n
	}
	if time.Since(start) < timeout {
		t.Fatalf("transfer too quick (%v) to prove anything", time.Since(start))
	}
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent peer: Read err = %v, want deadline exceeded", err)
	}
}

func TestWriteToNonReadingPeerIsCutOff(t *testing.T) {
	s, _ := pair(t)
	c := New(s, 100*time.Millisecond)
	buf := make([]byte, 1<<20)
	var err error
	for range 256 { // at most 256 MiB; the socket buffers fill long before
		if _, err = c.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write err = %v, want deadline exceeded", err)
	}
}

func TestSetTimeoutBetweenOperations(t *testing.T) {
	s, cl := pair(t)
	c := New(s, time.Hour)
	if c.Timeout() != time.Hour {
		t.Fatal("Timeout")
	}
	if _, err := cl.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(30 * time.Millisecond)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after SetTimeout: err = %v", err)
	}
}

func TestZeroDisablesAndClearsDeadline(t *testing.T) {
	s, cl := pair(t)
	c := New(s, 20*time.Millisecond)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	c.SetTimeout(0)
	// The earlier deadline must not linger: a read without timeout waits
	// until data arrives, however late.
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read without timeout returned early: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := cl.Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("read without timeout: %v", err)
	}
	if c.Unwrap() != s {
		t.Fatal("Unwrap")
	}
}
