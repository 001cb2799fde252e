package main

import (
	"context"
	"log/slog"

	"keyhole/proxy"
	"keyhole/store"
)

// proxyStore is the store the proxy reads stored secrets from and writes
// captured ones to: nil (no interface holding a nil *File) when there is
// none.
func proxyStore(st store.Store) store.Store {
	if st == nil {
		return nil
	}
	return st
}

// refreshStored puts the store's captured and taken-in secrets in force
// now and again whenever the store changes, until ctx ends. Watching starts
// before the first read, so no change is missed.
func refreshStored(ctx context.Context, p *proxy.Proxy, st store.Store, log *slog.Logger) {
	if st == nil {
		return
	}
	changed := st.Watch(ctx)
	refresh := func() {
		if err := p.RefreshStored(ctx); err != nil {
			log.Error("stored secrets not all read", "error", err)
		}
	}
	refresh()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				refresh()
			}
		}
	}()
}
