//! Decoding the site fields of an entry or event record (docs/tracker-abi.md: `site`,
//! `user_site`, `user_program`) into named sites, through the sampler's `SiteNames` cache: a
//! record whose addresses and program were seen before costs one lookup.

use super::{Sampler, SiteFields, SnapshotError};
use crate::sites::Named;
use crate::target::GuestMemory;
use std::sync::Arc;

impl Sampler {
    /// What names the entries' and events' sites; [`new`](Self::new) sets one when the
    /// kernel records sites. Without one, snapshots carry no sites.
    pub fn set_site_names(&mut self, names: Option<crate::sites::SiteNames>) {
        self.site_names = names;
    }

    /// The directory site files are named relative to (`SiteNames::root`), if sites are named.
    pub fn site_root(&self) -> Option<&std::path::Path> {
        self.site_names
            .as_ref()
            .and_then(crate::sites::SiteNames::root)
    }

    /// The named sites of a record whose site fields are `f`: from the cache (one lookup),
    /// else named now (the program's name read like a tag). None without names or addresses.
    pub(super) fn sites<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        f: &SiteFields,
        rec: &[u8],
    ) -> Result<Named, SnapshotError> {
        let Some(names) = self.site_names.as_ref() else {
            return Ok((None, None));
        };
        let site = f.site.read_u64(rec).unwrap_or(0);
        let user_site = f.user_site.as_ref().and_then(|u| u.read_u64(rec));
        let user_site = user_site.unwrap_or(0);
        if site == 0 && user_site == 0 {
            return Ok((None, None));
        }
        if user_site == 0 {
            let raw = (site, 0, 0, 0);
            if let Some(named) = names.cached(&raw) {
                return Ok(named);
            }
            return Ok(self
                .site_names
                .as_mut()
                .map_or((None, None), |n| n.resolve(raw, "")));
        }
        let owner = f.owner.as_ref().and_then(|o| o.read_u64(rec)).unwrap_or(0) as u32;
        // The program: the record's own `user_program` (events), else its owner's name.
        let own = match &f.user_program {
            Some(p) => Some(self.string(t, p, rec)?).filter(|s| !s.is_empty()),
            None => None,
        };
        let program: Arc<str> = match (own, self.proc_names.get(&owner)) {
            (Some(own), _) => own,
            (None, Some(name)) => name.clone(),
            (None, None) => Arc::from(""),
        };
        let raw = (site, user_site, name_key(&program), program.len() as u64);
        let named = match self.site_names.as_ref().and_then(|n| n.cached(&raw)) {
            Some(named) => named,
            None => match self.site_names.as_mut() {
                Some(names) => names.resolve(raw, &program),
                None => (None, None),
            },
        };
        Ok(named)
    }
}

/// A program name as a cache key word (with its length: the rest of the key).
fn name_key(name: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::sites::AddressHasher::default();
    for chunk in name.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h.write_u64(u64::from_le_bytes(word));
    }
    h.finish()
}
