package alerts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Headers of every delivery.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// alert's secret, of the timestamp header, a '.', and the body.
	HeaderSignature = "X-Gatehouse-Signature"
	// HeaderTimestamp is the Unix time of the attempt; receivers should
	// refuse old ones (replays).
	HeaderTimestamp = "X-Gatehouse-Timestamp"
	// HeaderDelivery identifies the delivery; it is the same on every retry,
	// so receivers can drop duplicates.
	HeaderDelivery = "X-Gatehouse-Delivery"
	// HeaderAlert is the alert's name.
	HeaderAlert = "X-Gatehouse-Alert"
)

// Sign returns the HeaderSignature value for a body sent at timestamp.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is the signature of body at timestamp, in
// constant time. Receivers written in Go can use it as is.
func Verify(secret []byte, timestamp string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(sig))
}
