package certs_test

import (
	"crypto/tls"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"keyhole/certs"
)

func ExampleLoadOrCreate() {
	dir, err := os.MkdirTemp("", "keyhole-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The first call creates ca.pem and ca-key.pem; later calls load them.
	ca, err := certs.LoadOrCreate(filepath.Join(dir, "state"), certs.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// The proxy mints a leaf for the host named by the CONNECT request
	// (SNI is absent when a client connects to an IP address).
	host := "api.example.com"
	conf := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return ca.Leaf(host) },
	}
	leaf, err := conf.GetCertificate(&tls.ClientHelloInfo{ServerName: host})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(leaf.Leaf.DNSNames, "issued by", leaf.Leaf.Issuer.CommonName)
	// Output: [api.example.com] issued by keyhole CA
}

func ExampleInit() {
	dir, err := os.MkdirTemp("", "keyhole-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	for range 2 {
		created, err := certs.Init(dir)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("created:", created)
	}
	// Output:
	// created: true
	// created: false
}
