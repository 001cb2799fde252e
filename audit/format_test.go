package audit

import (
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.00ms"},
		{210 * time.Microsecond, "0.21ms"},
		{41200 * time.Microsecond, "41.2ms"},
		{999900 * time.Microsecond, "999.9ms"},
		{1500 * time.Millisecond, "1.50s"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := formatDuration(tc.d); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
