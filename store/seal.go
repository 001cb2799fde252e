package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"errors"
)

// The sealed file is magic, the key id, a nonce, and the AES-256-GCM
// sealing of the entries' JSON with magic and key id as additional data.
var magic = []byte("KHSTORE1")

const (
	keyIDLen  = 8
	nonceLen  = 12
	headerLen = 8 + keyIDLen + nonceLen
)

func newAEAD(k keys) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.aead)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(entries []fileEntry, k keys) ([]byte, error) {
	plain, err := json.Marshal(fileData{Version: 1, Entries: entries})
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerLen, headerLen+len(plain)+aead.Overhead())
	copy(out, magic)
	copy(out[8:], k.keyID)
	if _, err := rand.Read(out[8+keyIDLen : headerLen]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[8+keyIDLen:headerLen], plain, out[:8+keyIDLen]), nil
}

// open checks and opens a sealed file. Its errors say which check failed
// and never hold the contents.
func open(data []byte, k keys) ([]fileEntry, error) {
	if len(data) < len(magic) || string(data[:len(magic)]) != string(magic) {
		if len(data) < len(magic) && string(data) == string(magic[:len(data)]) {
			return nil, errors.New("the file is truncated; refusing it")
		}
		return nil, errors.New("not a keyhole store file; refusing it")
	}
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	if len(data) < headerLen+aead.Overhead() {
		return nil, errors.New("the file is truncated; refusing it")
	}
	if !hmac.Equal(data[8:8+keyIDLen], k.keyID) {
		return nil, errWrongKey(k.from)
	}
	plain, err := aead.Open(nil, data[8+keyIDLen:headerLen], data[headerLen:], data[:8+keyIDLen])
	if err != nil {
		return nil, errors.New("the file fails authentication: it is truncated, corrupt or was tampered with; refusing it")
	}
	defer clear(plain)
	var fd fileData
	if err := json.Unmarshal(plain, &fd); err != nil || fd.Version != 1 {
		return nil, errors.New("the file's contents are not a version 1 store; refusing it")
	}
	return fd.Entries, nil
}
