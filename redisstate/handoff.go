package redisstate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/handoff"
	"keyhole/store"
)

// Keys of shares and intakes in Redis: one hash a record, and an index
// set of each kind's ids.
const (
	shareKeyPrefix  = "keyhole:share:"
	intakeKeyPrefix = "keyhole:intake:"
	// SharesKey and IntakesKey index the records.
	SharesKey  = "keyhole:shares"
	IntakesKey = "keyhole:intakes"
)

// maxIDLen bounds a share's or intake's id.
const maxIDLen = 128

// Handoff is handoff.State in Redis, shared by replicas. A record is a
// hash: its fields as JSON ("rec"), its status, views left and granted
// hosts, and the share's ciphertext ("ct") or the intake's private key
// ("pk"), both sealed with the store key, so that Redis holds nothing
// that opens a value even together with a link. ClaimShare and
// FinishIntake are Lua scripts: atomic across every replica. Redis
// forgets a record handoff.Forget after it expired; at most
// handoff.MaxLive records of each kind are live (ready, pending) and
// handoff.MaxRecords kept.
type Handoff struct {
	c      *Client
	sealer *store.Sealer
}

var _ handoff.State = (*Handoff)(nil)

// NewHandoff returns the hand-off state over c, sealing with sealer.
func NewHandoff(c *Client, sealer *store.Sealer) *Handoff {
	return &Handoff{c: c, sealer: sealer}
}

// putScript creates a record unless its key exists, refusing (-1) when
// the index holds MaxRecords ids or MaxLive records of the kind are live:
// KEYS = record, index; ARGV = id, expire-at (unix ms), MaxRecords,
// MaxLive, the key prefix, the live status, now (unix ms), then
// field/value pairs. (It reads the kind's records by their names, which a
// single Redis allows; Redis Cluster is not supported.)
var putScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
local live = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local st = redis.call('HMGET', ARGV[5] .. id, 'status', 'expires')
  if st[1] == ARGV[6] and tonumber(st[2]) > tonumber(ARGV[7]) then live = live + 1 end
end
if live >= tonumber(ARGV[4]) then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1`)

// takeScript takes one use of a record: a share's view or an intake's
// answer. KEYS = record; ARGV = now (unix ms), the live status, the sealed
// field, the status after the last use, and for an intake the granted
// hosts. It returns {"ok", sealed, views left before} or {status}.
var takeScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if st == ARGV[2] and tonumber(ARGV[1]) >= tonumber(redis.call('HGET', KEYS[1], 'expires')) then
  redis.call('HSET', KEYS[1], 'status', 'expired', 'views_left', 0)
  redis.call('HDEL', KEYS[1], ARGV[3])
  return {'expired'}
end
if st ~= ARGV[2] then return {st} end
local sealed = redis.call('HGET', KEYS[1], ARGV[3]) or ''
local left = tonumber(redis.call('HGET', KEYS[1], 'views_left') or '1')
if left <= 1 then
  redis.call('HSET', KEYS[1], 'status', ARGV[4], 'views_left', 0)
  redis.call('HDEL', KEYS[1], ARGV[3])
  if ARGV[5] then redis.call('HSET', KEYS[1], 'granted', ARGV[5]) end
else
  redis.call('HSET', KEYS[1], 'views_left', left - 1)
end
return {'ok', sealed, tostring(left)}`)

// endScript ends a record that is still live: KEYS = record; ARGV = now
// (unix ms; 0: whatever its expiry), the live status, the sealed field,
// the new status. It returns 1 if it ended it, 0 if not, -1 if missing.
var endScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if ARGV[1] ~= '0' and (st ~= ARGV[2] or tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'expires'))) then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'views_left', 0)
redis.call('HDEL', KEYS[1], ARGV[3])
return 1`)

// kind is what differs between shares and intakes.
type kind struct {
	prefix, index, live, sealedField string
}

var (
	shareKind  = kind{shareKeyPrefix, SharesKey, string(handoff.StatusReady), "ct"}
	intakeKind = kind{intakeKeyPrefix, IntakesKey, string(handoff.StatusPending), "pk"}
)

func checkHandoffID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return handoff.ErrNotFound
	}
	return nil
}

// put stores a new record.
func (h *Handoff) put(ctx context.Context, k kind, id string, rec any, status handoff.Status, viewsLeft int, sealedPlain []byte, expires time.Time) error {
	if err := checkHandoffID(id); err != nil {
		return fmt.Errorf("handoff: bad id")
	}
	j, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	sealed, err := h.sealer.Seal(k.prefix+id, sealedPlain)
	if err != nil {
		return err
	}
	n, err := putScript.Run(ctx, h.c.rdb, []string{k.prefix + id, k.index}, id,
		expires.Add(handoff.Forget).UnixMilli(), handoff.MaxRecords, handoff.MaxLive, k.prefix, k.live, time.Now().UnixMilli(),
		"rec", j, "status", string(status), "views_left", viewsLeft,
		"expires", expires.UnixMilli(), k.sealedField, sealed).Int()
	switch {
	case err != nil:
		return h.c.fail("handoff "+id, err)
	case n == 0:
		return fmt.Errorf("handoff: %s already exists", id)
	case n < 0:
		_, _ = h.prune(ctx, k)
		return handoff.ErrFull
	}
	return nil
}

// record is one hash as read.
type record struct {
	rec       []byte
	status    handoff.Status
	viewsLeft int
	granted   []string
	sealed    []byte
}

func (h *Handoff) get(ctx context.Context, k kind, id string) (record, error) {
	if err := checkHandoffID(id); err != nil {
		return record{}, err
	}
	m, err := h.c.rdb.HGetAll(ctx, k.prefix+id).Result()
	if err != nil {
		return record{}, h.c.fail("handoff "+id, err)
	}
	return h.decode(k, id, m)
}

func (h *Handoff) decode(k kind, id string, m map[string]string) (record, error) {
	if len(m) == 0 || m["rec"] == "" {
		return record{}, handoff.ErrNotFound
	}
	r := record{rec: []byte(m["rec"]), status: handoff.Status(m["status"])}
	r.viewsLeft, _ = strconv.Atoi(m["views_left"])
	if g := m["granted"]; g != "" {
		_ = json.Unmarshal([]byte(g), &r.granted)
	}
	if s := m[k.sealedField]; s != "" {
		plain, err := h.sealer.Open(k.prefix+id, []byte(s))
		if err != nil {
			return record{}, fmt.Errorf("%w: %v", handoff.ErrDamaged, err)
		}
		r.sealed = plain
	}
	return r, nil
}

// take runs takeScript and returns the record as it was before.
func (h *Handoff) take(ctx context.Context, k kind, id string, now time.Time, after handoff.Status, granted []string) (record, error) {
	if err := checkHandoffID(id); err != nil {
		return record{}, err
	}
	args := []any{now.UnixMilli(), k.live, k.sealedField, string(after)}
	if granted != nil {
		g, _ := json.Marshal(granted)
		args = append(args, g)
	}
	// Read the record first (its fields do not change but for the ones
	// the script returns).
	before, err := h.get(ctx, k, id)
	if err != nil {
		return record{}, err
	}
	res, err := takeScript.Run(ctx, h.c.rdb, []string{k.prefix + id}, args...).StringSlice()
	if err != nil {
		return record{}, h.c.fail("handoff "+id, err)
	}
	switch res[0] {
	case "missing":
		return record{}, handoff.ErrNotFound
	case "ok":
	default:
		before.status = handoff.Status(res[0])
		return before, &handoff.GoneError{Status: before.status}
	}
	plain, err := h.sealer.Open(k.prefix+id, []byte(res[1]))
	if err != nil {
		return record{}, fmt.Errorf("%w: %v", handoff.ErrDamaged, err)
	}
	before.sealed, before.status = plain, handoff.Status(k.live)
	before.viewsLeft, _ = strconv.Atoi(res[2])
	return before, nil
}

// PutShare implements handoff.State.
func (h *Handoff) PutShare(ctx context.Context, s handoff.Share) error {
	ct := s.Ciphertext
	s.Ciphertext = nil
	return h.put(ctx, shareKind, s.ID, s, handoff.StatusReady, s.ViewsLeft, ct, s.Expires)
}

func (r record) share(now time.Time, withCiphertext bool) (handoff.Share, error) {
	var s handoff.Share
	if err := json.Unmarshal(r.rec, &s); err != nil {
		return s, fmt.Errorf("%w: %v", handoff.ErrDamaged, err)
	}
	s.Status, s.ViewsLeft = r.status, r.viewsLeft
	if s.Status == handoff.StatusReady && !now.Before(s.Expires) {
		s.Status, s.ViewsLeft = handoff.StatusExpired, 0
	}
	if withCiphertext && s.Status == handoff.StatusReady {
		s.Ciphertext = r.sealed
	}
	return s, nil
}

// GetShare implements handoff.State.
func (h *Handoff) GetShare(ctx context.Context, id string) (handoff.Share, error) {
	r, err := h.get(ctx, shareKind, id)
	if err != nil {
		return handoff.Share{}, err
	}
	return r.share(time.Now(), true)
}

// ClaimShare implements handoff.State.
func (h *Handoff) ClaimShare(ctx context.Context, id string, now time.Time) (handoff.Share, error) {
	r, err := h.take(ctx, shareKind, id, now, handoff.StatusViewed, nil)
	if errors.Is(err, handoff.ErrGone) {
		s, _ := r.share(now, false)
		return s, err
	}
	if err != nil {
		return handoff.Share{}, err
	}
	s, err := r.share(now, true)
	s.Status, s.Ciphertext = handoff.StatusReady, r.sealed // as it was before
	return s, err
}

// RevokeShare implements handoff.State.
func (h *Handoff) RevokeShare(ctx context.Context, id string) error {
	if err := checkHandoffID(id); err != nil {
		return err
	}
	n, err := endScript.Run(ctx, h.c.rdb, []string{shareKeyPrefix + id}, 0, shareKind.live, "ct", string(handoff.StatusRevoked)).Int()
	if err != nil {
		return h.c.fail("handoff "+id, err)
	}
	if n < 0 {
		return handoff.ErrNotFound
	}
	return nil
}

// ListShares implements handoff.State.
func (h *Handoff) ListShares(ctx context.Context) ([]handoff.Share, error) {
	recs, err := h.list(ctx, shareKind)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]handoff.Share, 0, len(recs))
	for _, r := range recs {
		if s, err := r.share(now, false); err == nil {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b handoff.Share) int { return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// PutIntake implements handoff.State.
func (h *Handoff) PutIntake(ctx context.Context, in handoff.Intake) error {
	pk := in.PrivateKey
	in.PrivateKey = nil
	return h.put(ctx, intakeKind, in.ID, in, handoff.StatusPending, 1, pk, in.Expires)
}

func (r record) intake(now time.Time) (handoff.Intake, error) {
	var in handoff.Intake
	if err := json.Unmarshal(r.rec, &in); err != nil {
		return in, fmt.Errorf("%w: %v", handoff.ErrDamaged, err)
	}
	in.Status, in.GrantedHosts = r.status, r.granted
	if in.Status == handoff.StatusPending && !now.Before(in.Expires) {
		in.Status = handoff.StatusExpired
	}
	if in.Status == handoff.StatusPending {
		in.PrivateKey = r.sealed
	}
	return in, nil
}

// GetIntake implements handoff.State.
func (h *Handoff) GetIntake(ctx context.Context, id string) (handoff.Intake, error) {
	r, err := h.get(ctx, intakeKind, id)
	if err != nil {
		return handoff.Intake{}, err
	}
	return r.intake(time.Now())
}

// FinishIntake implements handoff.State.
func (h *Handoff) FinishIntake(ctx context.Context, id string, status handoff.Status, granted []string, now time.Time) (handoff.Intake, error) {
	if status != handoff.StatusFulfilled && status != handoff.StatusDeclined {
		return handoff.Intake{}, fmt.Errorf("handoff: finish intake: bad status %q", status)
	}
	if granted == nil {
		granted = []string{}
	}
	r, err := h.take(ctx, intakeKind, id, now, status, granted)
	if errors.Is(err, handoff.ErrGone) {
		in, _ := r.intake(now)
		return in, err
	}
	if err != nil {
		return handoff.Intake{}, err
	}
	in, err := r.intake(now)
	in.Status, in.PrivateKey = handoff.StatusPending, r.sealed // as it was before
	return in, err
}

// Sweep implements handoff.State. Redis itself forgets records
// handoff.Forget after their expiry; Sweep drops them from the indexes.
func (h *Handoff) Sweep(ctx context.Context, now time.Time) (shares, intakes []string, err error) {
	if shares, err = h.sweep(ctx, shareKind, now); err != nil {
		return nil, nil, err
	}
	if intakes, err = h.sweep(ctx, intakeKind, now); err != nil {
		return nil, nil, err
	}
	return shares, intakes, nil
}

func (h *Handoff) sweep(ctx context.Context, k kind, now time.Time) ([]string, error) {
	ids, err := h.prune(ctx, k)
	if err != nil {
		return nil, err
	}
	var marked []string
	for _, id := range ids {
		n, err := endScript.Run(ctx, h.c.rdb, []string{k.prefix + id}, now.UnixMilli(), k.live, k.sealedField, string(handoff.StatusExpired)).Int()
		if err != nil {
			return nil, h.c.fail("handoff sweep", err)
		}
		if n == 1 {
			marked = append(marked, id)
		}
	}
	slices.Sort(marked)
	return marked, nil
}

// prune drops from k's index the ids whose record Redis forgot, and
// returns the others.
func (h *Handoff) prune(ctx context.Context, k kind) ([]string, error) {
	ids, err := h.c.rdb.SMembers(ctx, k.index).Result()
	if err != nil {
		return nil, h.c.fail("handoff index", err)
	}
	cmds := make([]*redis.IntCmd, len(ids))
	if _, err := h.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Exists(ctx, k.prefix+id)
		}
		return nil
	}); err != nil {
		return nil, h.c.fail("handoff index", err)
	}
	var kept []any
	var live []string
	for i, id := range ids {
		if cmds[i].Val() == 0 {
			kept = append(kept, id)
		} else {
			live = append(live, id)
		}
	}
	if len(kept) > 0 {
		_ = h.c.rdb.SRem(ctx, k.index, kept...).Err()
	}
	return live, nil
}

// list reads every record of kind k.
func (h *Handoff) list(ctx context.Context, k kind) ([]record, error) {
	ids, err := h.prune(ctx, k)
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := h.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, k.prefix+id)
		}
		return nil
	}); err != nil {
		return nil, h.c.fail("handoff list", err)
	}
	var out []record
	for i, id := range ids {
		r, err := h.decode(k, id, cmds[i].Val())
		if err == nil {
			r.sealed = nil // lists carry no ciphertext or key
			out = append(out, r)
		}
	}
	return out, nil
}
