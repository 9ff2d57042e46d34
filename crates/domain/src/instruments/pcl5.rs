//! PCL-5 (spec 7.3, [S38]): 20 items scored 0–4, total 0–80, cluster sums B/C/D/E, and two
//! provisional-diagnosis methods reported side by side (they can disagree; never one verdict).
//! There are no severity bands for the PCL-5, so none is reported.

use super::{ItemError, scale_items};

/// CONFIG-DEFAULT cut-point for the total-score method (spec 7.3: guidance 31–33).
pub const DEFAULT_CUTOFF: u8 = 33;

/// Per DSM-5 cluster; written with the clusters' letters (`B`, `C`, `D`, `E`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub struct Clusters {
    pub b: u8,
    pub c: u8,
    pub d: u8,
    pub e: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcl5 {
    pub items: Vec<u8>,
    pub total: u8,
    pub clusters: Clusters,
    /// Items >= 2 per cluster (endorsed under the DSM rule).
    pub endorsed: Clusters,
    /// DSM-5 rule: >= 1 B, >= 1 C, >= 2 D, >= 2 E endorsed.
    pub provisional_dsm5: bool,
    /// Total >= the configured cut-point.
    pub provisional_cutoff: bool,
    pub cutoff: u8,
}

pub fn score(answers: &[Option<i64>], cutoff: u8) -> Result<Pcl5, ItemError> {
    let items = scale_items(answers, 20, 4)?;
    let sum = |r: std::ops::Range<usize>| items[r].iter().sum::<u8>();
    let endorsed = |r: std::ops::Range<usize>| u8::try_from(items[r].iter().filter(|v| **v >= 2).count()).unwrap_or(0);
    let clusters = Clusters { b: sum(0..5), c: sum(5..7), d: sum(7..14), e: sum(14..20) };
    let endorsed = Clusters { b: endorsed(0..5), c: endorsed(5..7), d: endorsed(7..14), e: endorsed(14..20) };
    let total = items.iter().sum();
    Ok(Pcl5 {
        provisional_dsm5: endorsed.b >= 1 && endorsed.c >= 1 && endorsed.d >= 2 && endorsed.e >= 2,
        provisional_cutoff: total >= cutoff,
        cutoff,
        total,
        clusters,
        endorsed,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(v: &[i64]) -> Vec<Option<i64>> {
        v.iter().map(|x| Some(*x)).collect()
    }

    #[test]
    fn tv_pcl_1_the_methods_disagree() {
        let s = score(&answers(&[3, 2, 1, 2, 3, 2, 1, 0, 1, 2, 1, 3, 1, 0, 1, 2, 1, 3, 0, 1]), DEFAULT_CUTOFF);
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.total, 30);
        assert_eq!(s.clusters, Clusters { b: 11, c: 3, d: 8, e: 8 });
        assert_eq!(s.endorsed, Clusters { b: 4, c: 1, d: 2, e: 2 });
        assert!(s.provisional_dsm5);
        assert!(!s.provisional_cutoff);
        assert!(
            !score(&answers(&[3, 2, 1, 2, 3, 2, 1, 0, 1, 2, 1, 3, 1, 0, 1, 2, 1, 3, 0, 1]), 31)
                .is_ok_and(|s| s.provisional_cutoff)
        );
    }

    #[test]
    fn tv_pcl_2_to_4() {
        let s2 = score(&answers(&[2; 20]), DEFAULT_CUTOFF).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s2.total, s2.endorsed, s2.provisional_dsm5, s2.provisional_cutoff),
            (40, Clusters { b: 5, c: 2, d: 7, e: 6 }, true, true)
        );
        let s3 = score(&answers(&[1; 20]), DEFAULT_CUTOFF).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s3.total, s3.endorsed, s3.provisional_dsm5, s3.provisional_cutoff),
            (20, Clusters { b: 0, c: 0, d: 0, e: 0 }, false, false)
        );
        let mut v = [2i64; 20];
        v[16..].fill(0);
        let s4 = score(&answers(&v), DEFAULT_CUTOFF).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s4.total, s4.endorsed, s4.provisional_dsm5, s4.provisional_cutoff),
            (32, Clusters { b: 5, c: 2, d: 7, e: 2 }, true, false)
        );
        assert!(score(&answers(&v), 31).is_ok_and(|s| s.provisional_cutoff), "positive at the lenient cut 31");
    }

    #[test]
    fn out_of_range_names_the_item() {
        let mut v = [0i64; 20];
        v[12] = 5;
        assert_eq!(score(&answers(&v), DEFAULT_CUTOFF).err().map(|e| e.item), Some("13".to_owned()));
    }
}
