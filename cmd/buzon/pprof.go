package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves the runtime profiles of net/http/pprof on addr
// (`buzon serve --pprof ADDR`), so the measurements of the benchmarks can
// be taken on a running server. The handlers are on a mux of their own:
// nothing else in the process can add to what this listener exposes.
func startPprof(addr string, log *slog.Logger) (service, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return service{}, fmt.Errorf("pprof listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	// Index also serves the named profiles: /debug/pprof/heap, goroutine…
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	bound := l.Addr().String()
	log.Info("listening", "protocol", "pprof", "addr", bound)
	if ta, ok := l.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		// Profiles show command lines, goroutine stacks and memory
		// contents' shape: meant for the machine's own operator only.
		log.Warn("pprof is reachable from other hosts; bind it to a loopback address", "addr", bound)
	}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", "addr", bound, "err", err)
		}
	}()
	return service{
		name: "pprof",
		shutdown: func(ctx context.Context) error {
			// A CPU profile or trace in progress may outlast the grace
			// period: cut it off then.
			if err := hs.Shutdown(ctx); err != nil {
				_ = hs.Close()
				return fmt.Errorf("pprof shutdown: %w", err)
			}
			return nil
		},
	}, nil
}
