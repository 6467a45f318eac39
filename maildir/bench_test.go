package maildir

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// parallel20 runs op b.N times in total from 20 goroutines (the SMTP
// target's concurrency) and reports messages per second. op gets the
// goroutine's index.
func parallel20(b *testing.B, op func(g int) error) {
	const workers = 20
	var next atomic.Int64
	errs := make(chan error, workers)
	b.SetBytes(int64(len(message4K)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(g); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkDiskLimit20 is the disk's own limit for durable deliveries, with
// no Maildir code: 20 goroutines each loop {create tmp/<unique>, write
// 4 KiB, fsync, close, rename into new/, fsync new/}. Delivery throughput
// is judged against it.
func BenchmarkDiskLimit20(b *testing.B) {
	dir := b.TempDir()
	tmp, newDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new")
	for _, d := range []string{tmp, newDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	parallel20(b, func(int) error {
		name := strconv.FormatInt(seq.Add(1), 10)
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(message4K)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(filepath.Join(tmp, name), filepath.Join(newDir, name))
		}
		if err != nil {
			return err
		}
		d, err := os.Open(newDir)
		if err != nil {
			return err
		}
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// BenchmarkDeliverParallel20 is durable delivery (Begin, Write, Commit)
// of 4 KiB messages from 20 goroutines into one user's Maildir, as 20 SMTP
// sessions delivering to the same user do.
// It also reports how many fsyncs of new/ each message cost: below 1 when
// concurrent deliveries share them.
func BenchmarkDeliverParallel20(b *testing.B) {
	fs := &countingFS{}
	s := newStore(b, fs, "u")
	fs.syncDirs.Store(0)
	defer func() { b.ReportMetric(float64(fs.syncDirs.Load())/float64(b.N), "dirsyncs/msg") }()
	parallel20(b, func(int) error {
		d, err := s.Begin("u")
		if err != nil {
			return err
		}
		if _, err := d.Write(message4K); err != nil {
			d.Abort()
			return err
		}
		_, err = d.Commit()
		return err
	})
}

// countingFS is the real file system, counting directory fsyncs.
type countingFS struct {
	osFS
	syncDirs atomic.Int64
}

func (c *countingFS) SyncDir(dir string) error {
	c.syncDirs.Add(1)
	return c.osFS.SyncDir(dir)
}
