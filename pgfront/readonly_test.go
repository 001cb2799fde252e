package pgfront

import "testing"

func TestBreaksReadOnly(t *testing.T) {
	tests := []struct {
		q    string
		want bool
	}{
		{"SET default_transaction_read_only = off", true},
		{"set DEFAULT_TRANSACTION_READ_ONLY to false", true},
		{`SET "transaction_read_only" = off`, true},
		{"SET transaction_read_only /* x */ = off", true},
		{"BEGIN READ WRITE", true},
		{"begin read\n  -- a comment\n write", true},
		{"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ/**/WRITE", true},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", true},
		{"SELECT set_config('transaction_read_only', 'off', false)", true},
		{"SELECT pg_catalog.SET_CONFIG('default_transaction' || '_read_only', 'off', false)", true},
		{`SET U&"transaction\005fread\005fonly" = off`, true},
		{"SELECT count(*) FROM users", false},
		{"BEGIN", false},
		{"BEGIN READ ONLY", false},
		{"RESET ALL", false},
		{"SELECT * FROM orders WHERE note = 'readonly'", false},
	}
	for _, tc := range tests {
		if got := breaksReadOnly(tc.q); got != tc.want {
			t.Errorf("%q: got %v, want %v", tc.q, got, tc.want)
		}
	}
}

func FuzzBreaksReadOnly(f *testing.F) {
	f.Add("SET default_transaction_read_only = off")
	f.Add("begin read /* */ write")
	f.Fuzz(func(t *testing.T, q string) {
		// Inserting comments and white space never hides a breaker.
		if breaksReadOnly(q) && !breaksReadOnly(" /* c */ "+q+"\n-- end") {
			t.Fatalf("a comment hid a breaker in %q", q)
		}
		if breaksReadOnly("SET transaction_read_only = off; "+q) != true {
			t.Fatalf("a suffix %q hid a breaker", q)
		}
	})
}
