package pop3

import (
	"crypto/sha256"
	"encoding/hex"
)

// UIDL returns the unique-id listing of a message whose Maildir unique name
// is id. RFC 1939 §7 allows 1 to 70 characters in 0x21–0x7E; a name that
// fits is used as is, any other is replaced by a fixed hash of it (SPEC §5),
// so a message's UIDL never changes across sessions, moves or versions.
func UIDL(id string) string {
	if validUIDL(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	// 32 hex digits: far below the 70-octet limit, collisions negligible.
	return hex.EncodeToString(sum[:16])
}

func validUIDL(id string) bool {
	if len(id) == 0 || len(id) > 70 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
