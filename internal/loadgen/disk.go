package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DiskConfig describes the durable-write loop that measures the disk's own
// limit for Maildir deliveries, the yardstick for SMTP throughput.
type DiskConfig struct {
	Dir      string // created if missing; tmp/ and new/ inside
	Workers  int    // goroutines, default 20
	Ops      int    // total durable writes
	Size     int    // octets per file, default 4096
	Progress io.Writer
	Name     string
}

// RunDisk writes Ops files the way a Maildir delivery makes one durable:
// create tmp/<unique>, write Size bytes, fsync, close, rename into new/,
// fsync new/. The files are removed afterwards.
func RunDisk(ctx context.Context, cfg DiskConfig) (Result, error) {
	cfg.Workers = orDefault(cfg.Workers, 20)
	cfg.Size = orDefault(cfg.Size, 4096)
	if cfg.Dir == "" || cfg.Ops <= 0 || cfg.Workers < 0 || cfg.Size < 0 {
		return Result{}, fmt.Errorf("disk: need a directory, ops > 0 and non-negative workers and size")
	}
	cfg.Name = orDefault(cfg.Name, fmt.Sprintf("disk w=%d %dx%s", cfg.Workers, cfg.Ops, sizeLabel(cfg.Size)))
	tmp, nw := filepath.Join(cfg.Dir, "tmp"), filepath.Join(cfg.Dir, "new")
	for _, d := range []string{tmp, nw} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return Result{}, fmt.Errorf("disk: %w", err)
		}
	}
	params := map[string]any{"dir": cfg.Dir, "workers": cfg.Workers, "ops": cfg.Ops, "size": cfg.Size}

	data := make([]byte, cfg.Size)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	r := newRun(0)
	stop := r.progress(cfg.Progress, cfg.Name, int64(cfg.Ops), "writes")
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		written []string
	)
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.Itoa(os.Getpid())
	for w := range cfg.Workers {
		wg.Go(func() {
			var lats []time.Duration
			var names []string
			for ctx.Err() == nil {
				n := next.Add(1)
				if n > int64(cfg.Ops) {
					break
				}
				name := prefix + "." + strconv.Itoa(w) + "." + strconv.FormatInt(n, 10)
				t0 := time.Now()
				if err := durableWrite(tmp, nw, name, data); err != nil {
					r.fail(errKind(err))
					continue
				}
				lats = append(lats, time.Since(t0))
				names = append(names, name)
				r.ops.Add(1)
				r.bytes.Add(int64(len(data)))
			}
			r.addLatencies(lats)
			mu.Lock()
			written = append(written, names...)
			mu.Unlock()
		})
	}
	wg.Wait()
	stop()
	res := r.result("disk", cfg.Name, params)
	res.Extra = map[string]any{"workers": cfg.Workers}
	var rmErr error
	for _, name := range written {
		rmErr = errors.Join(rmErr, os.Remove(filepath.Join(nw, name)))
	}
	if rmErr != nil {
		return res, fmt.Errorf("disk: removing the files written: %w", rmErr)
	}
	return res, nil
}

// durableWrite is one Maildir-style delivery without the mail: the file is
// fsynced before the rename and the directory after it.
func durableWrite(tmpDir, newDir, name string, data []byte) error {
	tmpPath := filepath.Join(tmpDir, name)
	f, err := os.OpenFile(tmpPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmpPath, filepath.Join(newDir, name))
	}
	if err != nil {
		_ = os.Remove(tmpPath)
		return fmt.Errorf("write %s: %w", name, err)
	}
	d, err := os.Open(newDir)
	if err != nil {
		return fmt.Errorf("open new: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync new: %w", err)
	}
	return nil
}
