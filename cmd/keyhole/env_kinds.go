package main

import (
	"fmt"
	"strings"

	"keyhole/rules"
)

// dummyAWSSecret is the AWS_SECRET_ACCESS_KEY keyhole env exports: AWS
// SDKs refuse to sign without a secret key, and keyhole signs the request
// again with the real one, so any value does.
const dummyAWSSecret = "keyhole-signs-again-this-is-not-a-secret"

// kindExports writes the exports the credential kinds need beyond the
// placeholder variables: for the first aws_sigv4 secret (by name) the
// variables every AWS SDK and the aws CLI read. A variable a secret's own
// env: already sets is left alone.
func kindExports(b *strings.Builder, secrets []*rules.Secret, export func(name, value string)) {
	for _, sec := range secrets {
		if sec.Kind != rules.KindAWSSigV4 {
			continue
		}
		b.WriteString("# AWS SDKs and the aws CLI: sign with the placeholder; keyhole signs again with the real key\n")
		for _, v := range [][2]string{{"AWS_ACCESS_KEY_ID", sec.Placeholder()}, {"AWS_SECRET_ACCESS_KEY", dummyAWSSecret}} {
			if !strings.Contains(b.String(), fmt.Sprintf("export %s=", v[0])) {
				export(v[0], v[1])
			}
		}
		return
	}
}
