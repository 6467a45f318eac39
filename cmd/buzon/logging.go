package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/buzon-mail/buzon/config"
)

// logSink is the log output: a file that can be reopened (SIGUSR1, after
// logrotate moved it) or switched (SIGHUP with a new log.file), or stderr.
type logSink struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	stderr io.Writer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return s.stderr.Write(p)
	}
	return s.f.Write(p)
}

// open switches to path ("" = stderr); on error the old output stays.
func (s *logSink) open(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f *os.File
	if path != "" {
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("log.file: %w", err)
		}
	}
	if s.f != nil {
		s.f.Close()
	}
	s.path, s.f = path, f
	return nil
}

// reopen opens the same path again.
func (s *logSink) reopen() error {
	s.mu.Lock()
	p := s.path
	s.mu.Unlock()
	return s.open(p)
}

func (s *logSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// logSetup owns the process logger; level, format and file change on SIGHUP.
type logSetup struct {
	sink  *logSink
	level slog.LevelVar
	root  *switchHandler
}

func newLogSetup(stderr io.Writer) *logSetup {
	ls := &logSetup{sink: &logSink{stderr: stderr}}
	ls.root = &switchHandler{state: &switchState{}}
	ls.root.state.set(slog.NewTextHandler(ls.sink, &slog.HandlerOptions{Level: &ls.level}))
	return ls
}

func (ls *logSetup) logger() *slog.Logger { return slog.New(ls.root) }

// apply sets level, format and file from cfg.
func (ls *logSetup) apply(c config.Log) error {
	if err := ls.sink.open(c.File); err != nil {
		return err
	}
	ls.level.Set(parseLevel(c.Level))
	opts := &slog.HandlerOptions{Level: &ls.level}
	if c.Format == "json" {
		ls.root.state.set(slog.NewJSONHandler(ls.sink, opts))
	} else {
		ls.root.state.set(slog.NewTextHandler(ls.sink, opts))
	}
	return nil
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// switchHandler forwards to the current handler, so loggers handed out at
// start follow a format change on SIGHUP. Derived handlers replay their
// WithAttrs/WithGroup calls on the current handler (cached per generation).
type switchHandler struct {
	state *switchState
	ops   []func(slog.Handler) slog.Handler

	mu    sync.Mutex
	gen   uint64
	built slog.Handler
}

type switchState struct {
	mu  sync.RWMutex
	gen uint64
	h   slog.Handler
}

func (s *switchState) set(h slog.Handler) {
	s.mu.Lock()
	s.gen++
	s.h = h
	s.mu.Unlock()
}

func (s *switchState) get() (uint64, slog.Handler) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen, s.h
}

func (h *switchHandler) current() slog.Handler {
	gen, base := h.state.get()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.built == nil || h.gen != gen {
		for _, op := range h.ops {
			base = op(base)
		}
		h.gen, h.built = gen, base
	}
	return h.built
}

func (h *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.current().Enabled(ctx, l)
}

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h *switchHandler) derive(op func(slog.Handler) slog.Handler) *switchHandler {
	ops := append(append([]func(slog.Handler) slog.Handler(nil), h.ops...), op)
	return &switchHandler{state: h.state, ops: ops}
}

func (h *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.derive(func(b slog.Handler) slog.Handler { return b.WithAttrs(as) })
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return h.derive(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}
