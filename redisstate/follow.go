package redisstate

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPipe is a transaction's queue of commands.
type redisPipe = redis.Pipeliner

// maxMessage bounds a pub/sub message that is acted on.
const maxMessage = 1024

// fail wraps a failed command's error for a message, without the password.
func (c *Client) fail(what string, err error) error {
	return fmt.Errorf("%s in redis at %s: %w", what, c.where, redact(err, c.rdb.Options().Password))
}

// follow runs until ctx ends: onMsg for each message on channel, and
// resync once subscribed, every ResyncInterval and each time Redis answers
// again after an outage (pub/sub keeps nothing for a subscriber that was
// away). Failed resyncs go to onErr, which may be nil.
func follow(ctx context.Context, c *Client, channel string, onMsg func(string), resync func(context.Context) error, onErr func(error)) {
	again := make(chan struct{}, 1)
	poke := func(context.Context) {
		select {
		case again <- struct{}{}:
		default:
		}
	}
	c.OnRecover(poke)
	ps := c.rdb.Subscribe(ctx, channel)
	defer ps.Close()
	msgs := ps.Channel(redis.WithChannelHealthCheckInterval(time.Second))
	run := func() {
		if err := resync(ctx); err != nil && onErr != nil && ctx.Err() == nil {
			onErr(err)
		}
	}
	run()
	tick := time.NewTicker(ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			c.touch()
			if len(m.Payload) <= maxMessage {
				onMsg(m.Payload)
			}
		case <-tick.C:
			run()
		case <-again:
			run()
		}
	}
}
