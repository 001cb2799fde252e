package tokens

import "slices"

// SharedList is a revocation list that replicas share (redisstate's),
// read from a local copy so that a look-up never waits on the network.
type SharedList interface {
	// Has reports whether id is in the local copy.
	Has(id string) bool
	// Stale reports whether the local copy may have missed revocations
	// (the shared state has not answered for too long).
	Stale() bool
}

type sharedHolder struct{ l SharedList }

// Share adds l to the revocations: an id it holds is revoked too, and
// while it is stale Unavailable reports true. The file stays the record of
// what was revoked here.
func (r *Revocations) Share(l SharedList) {
	r.shared.Store(&sharedHolder{l: l})
}

// Unavailable reports whether revocations could have been missed: the
// shared list is stale. Minted tokens are then refused. Without a shared
// list (and for a nil *Revocations) it is false.
func (r *Revocations) Unavailable() bool {
	if r == nil {
		return false
	}
	h := r.shared.Load()
	return h != nil && h.l.Stale()
}

// IDs returns the ids in the revocation file, sorted, as last read, so
// that they can be published to the shared list.
func (r *Revocations) IDs() []string {
	if r == nil {
		return nil
	}
	ids := *r.ids.Load()
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// CheckID reports whether id may be a token id ([A-Za-z0-9._-], 1 to 64
// characters, starting with a letter or digit).
func CheckID(id string) error { return checkID(id) }

func (r *Revocations) sharedRevoked(g *Grant) bool {
	h := r.shared.Load()
	if h == nil {
		return false
	}
	for _, id := range g.IDs {
		if h.l.Has(id) {
			return true
		}
	}
	return false
}
