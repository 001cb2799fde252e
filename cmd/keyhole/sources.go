package main

import (
	"context"
	"log/slog"
	"os"

	"keyhole/execsource"
	"keyhole/metrics"
	"keyhole/proxy"
	"keyhole/rules"
	"keyhole/store"
	"keyhole/vault"
)

// sourceLoader returns the rules loader with every source kind: exec:
// programs, the store in the state dir, Vault. With create unset (keyhole
// check) nothing is created in the state dir. m, when not nil, counts the
// reads.
func sourceLoader(s settings, create bool, m *metrics.Metrics) (*rules.Loader, *store.File) {
	open := store.OpenExisting
	if create {
		open = store.Open
	}
	st, err := open(s.StateDir, os.Getenv(store.KeyEnv))
	storeKind := store.Kind{Err: err}
	if err == nil {
		storeKind.Store = st
	}
	ld := &rules.Loader{Kinds: map[string]rules.Kind{
		"exec":  &execsource.Kind{},
		"store": storeKind,
		"vault": &vault.Kind{},
	}}
	if m != nil {
		ld.Observe = m.SourceRead
	}
	return ld, st
}

// refreshed puts in force a set whose values were read again (the rules
// are the same), logging what could not be read.
func refreshed(p *proxy.Proxy, set *rules.Set, log *slog.Logger, m *metrics.Metrics) {
	p.SetRules(set)
	for _, w := range set.Warnings {
		log.Warn(w)
	}
	m.Refreshed()
}

// storeChanges turns the store's changes into the Watcher's "store" kind
// changes; nil when there is no store.
func storeChanges(ctx context.Context, st store.Store) <-chan string {
	if st == nil {
		return nil
	}
	in := st.Watch(ctx)
	out := make(chan string)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-in:
				select {
				case out <- "store":
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
