"""Sharing a corpus without its images: `unimed release` (write), `unimed rebuild` (rebuild), licence gates (licences)."""
