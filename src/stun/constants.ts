// Wire constants of the STUN Binding method (RFC 5389 §6, §7, §15), with the RFC 3489 facts we still honour.

/** Fixed value at bytes 4–7 of every RFC 5389 message; it tells RFC 5389 apart from RFC 3489 and other
 *  protocols on the same port, and is the XOR key for XOR-MAPPED-ADDRESS (RFC 5389 §6). */
export const STUN_MAGIC_COOKIE = 0x2112a442;

/** STUN header length in bytes: type (2), length (2), cookie (4), transaction id (12) (RFC 5389 §6). */
export const STUN_HEADER_BYTES = 20;

/** RFC 5389 transaction id length in bytes, bytes 8–19 of the header (RFC 5389 §6). */
export const STUN_TRANSACTION_ID_BYTES = 12;

/** RFC 3489 transaction id length in bytes, bytes 4–19: the cookie's place was part of it (RFC 3489 §11.1). */
export const STUN_LEGACY_TRANSACTION_ID_BYTES = 16;

/** Attribute header length in bytes: type (2) and value length (2) (RFC 5389 §15). */
export const STUN_ATTRIBUTE_HEADER_BYTES = 4;

/** Largest STUN message we accept, in bytes. RFC 5389 §7.1 tells senders without a known path MTU to stay
 *  under 548 bytes (576-byte IPv4 minimum reassembly minus IP/UDP headers); a Binding Request needs ~20–200
 *  bytes even with ICE's USERNAME and MESSAGE-INTEGRITY, so 548 admits every real client while bounding the
 *  attribute walk and CRC done per datagram. */
export const MAX_STUN_MESSAGE_BYTES = 548;

/** Message type of a Binding Request: method 0x001, class request (RFC 5389 §6, §18.1). */
export const STUN_BINDING_REQUEST = 0x0001;

/** Message type of a Binding Success Response: method 0x001, class success (RFC 5389 §6, §18.1). */
export const STUN_BINDING_SUCCESS = 0x0101;

/** MAPPED-ADDRESS attribute type; kept in responses for RFC 3489 clients (RFC 5389 §15.1, §18.2). */
export const STUN_ATTR_MAPPED_ADDRESS = 0x0001;

/** CHANGE-REQUEST attribute type: ask the server to answer from another IP or port (RFC 3489 §11.2.4,
 *  RFC 5780 §7.2). */
export const STUN_ATTR_CHANGE_REQUEST = 0x0003;

/** XOR-MAPPED-ADDRESS attribute type; the address XORed so NATs that rewrite payloads leave it alone
 *  (RFC 5389 §15.2, §18.2). */
export const STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020;

/** FINGERPRINT attribute type; must be the last attribute (RFC 5389 §15.5, §18.2). */
export const STUN_ATTR_FINGERPRINT = 0x8028;

/** FINGERPRINT value is CRC-32 of the message XOR this ("STUN" in ASCII), so it differs from a CRC
 *  another protocol might carry in the same place (RFC 5389 §15.5). */
export const STUN_FINGERPRINT_XOR = 0x5354554e;

/** FINGERPRINT attribute length in bytes, header included (RFC 5389 §15.5). */
export const STUN_FINGERPRINT_ATTR_BYTES = 8;

/** Address family byte of an IPv4 (MAPPED|XOR-MAPPED)-ADDRESS (RFC 5389 §15.1). */
export const STUN_FAMILY_IPV4 = 0x01;

/** Address family byte of an IPv6 (MAPPED|XOR-MAPPED)-ADDRESS (RFC 5389 §15.1). */
export const STUN_FAMILY_IPV6 = 0x02;

/** Value length in bytes of an IPv4 address attribute: reserved, family, port (2), address (4) (RFC 5389 §15.1). */
export const STUN_ADDRESS_V4_VALUE_BYTES = 8;

/** Value length in bytes of an IPv6 address attribute: reserved, family, port (2), address (16) (RFC 5389 §15.1). */
export const STUN_ADDRESS_V6_VALUE_BYTES = 20;

/** Largest Binding Success Response we write, in bytes: header (20) + XOR-MAPPED-ADDRESS IPv6 (24) +
 *  FINGERPRINT (8) (RFC 5389 §7.3.1, §15); an RFC 3489 answer (header + MAPPED-ADDRESS) is smaller. Sizes the
 *  responder's reused buffer. */
export const MAX_BINDING_SUCCESS_BYTES = STUN_HEADER_BYTES + STUN_ATTRIBUTE_HEADER_BYTES + STUN_ADDRESS_V6_VALUE_BYTES + STUN_FINGERPRINT_ATTR_BYTES;
