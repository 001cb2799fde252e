package main

import (
	"context"
	"log/slog"

	"keyhole/metrics"
	"keyhole/redisstate"
)

// openShared connects to the Redis that replicas share, when
// KEYHOLE_REDIS_URL is set (nil, nil when it is not), and keeps its health
// current until ctx ends.
func openShared(ctx context.Context, s settings, log *slog.Logger, m *metrics.Metrics) (*redisstate.Client, error) {
	if s.Redis.URL == "" {
		return nil, nil
	}
	c, err := redisstate.Open(ctx, s.Redis)
	if err != nil {
		return nil, err
	}
	go c.Run(ctx, func(healthy bool, err error) {
		if healthy {
			log.Info("shared state: redis answers again; resyncing", "redis", c.Where())
		} else {
			log.Error("shared state: redis does not answer; serving from local copies", "redis", c.Where(), "stale_after", c.StaleAfter().String(), "error", err)
		}
	})
	m.Gauge("keyhole_redis_healthy", "1 while the shared Redis answers, else 0.", func() float64 { return boolGauge(c.Healthy()) })
	m.Gauge("keyhole_redis_stale", "1 while the shared Redis has not answered for longer than KEYHOLE_REDIS_STALE, else 0.", func() float64 { return boolGauge(c.Stale()) })
	log.Info("shared state in redis", "redis", c.Where())
	return c, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
