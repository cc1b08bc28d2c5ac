//! What each order of a bench run is: a success, a decline, a stock-out or
//! a cancel, spread evenly by the configured percentages.

/// The kinds of order a run mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Paid and reserved.
    Success,
    /// Paid with the declining token.
    Decline,
    /// Asks for a SKU that has no stock: cancelled after a refund.
    StockOut,
    /// Cancelled right after it is placed.
    Cancel,
}

impl Kind {
    /// The kind as the JSON report names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Decline => "decline",
            Kind::StockOut => "stock_out",
            Kind::Cancel => "cancel",
        }
    }
}

/// Percentages of each non-success kind; the rest succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    /// Declined payments, in percent.
    pub decline: u8,
    /// Stock-outs, in percent.
    pub stock_out: u8,
    /// Cancels, in percent.
    pub cancel: u8,
}

impl Mix {
    /// A mix, if its percentages add up to at most 100.
    pub fn new(decline: u8, stock_out: u8, cancel: u8) -> Option<Self> {
        (u16::from(decline) + u16::from(stock_out) + u16::from(cancel) <= 100).then_some(Self {
            decline,
            stock_out,
            cancel,
        })
    }

    /// The kind of the `i`-th order: within every 100 orders, exactly the
    /// configured number of each kind, interleaved rather than in blocks.
    pub fn kind(&self, i: u64) -> Kind {
        // Stride through 0..100 by a number coprime with 100, so each block
        // of 100 visits every slot once and the kinds interleave.
        let slot = (i * 37) % 100;
        let (d, s, c) = (
            u64::from(self.decline),
            u64::from(self.stock_out),
            u64::from(self.cancel),
        );
        if slot < d {
            Kind::Decline
        } else if slot < d + s {
            Kind::StockOut
        } else if slot < d + s + c {
            Kind::Cancel
        } else {
            Kind::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_kind_is_named_in_the_human_report_as_in_the_json_one() {
        for kind in [Kind::Success, Kind::Decline, Kind::StockOut, Kind::Cancel] {
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(kind.name())));
        }
    }

    proptest! {
        #[test]
        fn every_hundred_orders_hold_exactly_the_configured_mix(
            d in 0u8..=40, s in 0u8..=30, c in 0u8..=30, block in 0u64..1000,
        ) {
            let mix = Mix::new(d, s, c).expect("at most 100");
            let kinds: Vec<Kind> = (block * 100..block * 100 + 100).map(|i| mix.kind(i)).collect();
            let count = |k| kinds.iter().filter(|x| **x == k).count();
            prop_assert_eq!(count(Kind::Decline), usize::from(d));
            prop_assert_eq!(count(Kind::StockOut), usize::from(s));
            prop_assert_eq!(count(Kind::Cancel), usize::from(c));
        }
    }

    #[test]
    fn a_mix_over_a_hundred_percent_is_refused() {
        assert!(Mix::new(50, 30, 21).is_none());
    }
}
