//! Credit top-ups: `POST /api/user/credits` (PIN-confirmed, waits for payment
//! like a purchase) and `GET /api/user/credits` (balance and recent top-ups).
//!
//! The PIN step is the purchase's, word for word: the same lock check, the
//! same argon2 verification on the blocking pool, the same failure counter
//! (a wrong PIN here counts toward the lockout of purchases too) and the same
//! answers (`purchase::pin_error`).

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::auth::Need;
use super::super::idem::{self, Begun};
use super::super::response::{json, ApiError, Reply};
use super::super::{Ctx, Http};
use super::purchase::pin_error;
use crate::clock::Millis;
use crate::event::EventRef;
use crate::ids::AccountId;
use crate::purchase::{TopUp, TopUpError, TopUps, MAX_SHOWN};

#[derive(Deserialize)]
struct TopUpBody {
    #[serde(default)]
    amount: Option<Value>,
    #[serde(default)]
    pin: Option<String>,
}

fn topup_error(e: TopUpError) -> ApiError {
    match e {
        TopUpError::Amount => ApiError::bad_request(e.to_string()),
        TopUpError::TooManyWaiting => ApiError {
            message: e.to_string(),
            ..ApiError::rate_limited(1)
        },
    }
}

fn topup_json(t: &TopUp) -> Value {
    json!({
        "topup_id": t.topup_id,
        "amount": t.amount,
        "status": t.status.as_str(),
        "created_at": t.created_at,
    })
}

/// `amount` as the contract wants it: a JSON integer from 100 to 100000.
fn amount(v: Option<&Value>) -> Result<u64, ApiError> {
    let n = v
        .and_then(Value::as_u64)
        .ok_or_else(|| topup_error(TopUpError::Amount))?;
    TopUps::validate_amount(n).map_err(topup_error)?;
    Ok(n)
}

/// `POST /api/user/credits` `{"amount", "pin"}` → 202 `{"status": "waiting", "topup_id"}`.
pub async fn create(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let body: TopUpBody = ctx.json().await?;
    let fresh = match idem::begin(http, ctx, caller.account).await? {
        Begun::Replay(first) => return Ok(first),
        Begun::Fresh(f) => Some(f),
        Begun::Plain => None,
    };
    let amount = amount(body.amount.as_ref())?;
    let now = super::purchase::confirm_pin(http, caller.account, body.pin).await?;
    let app = &http.app;
    let answer = |t: &TopUp| json!({"status": t.status.as_str(), "topup_id": t.topup_id});
    let topup = app
        .write(|st, rec| -> Result<TopUp, ApiError> {
            // With an Idempotency-Key the top-up and its kept answer are one record.
            if fresh.is_some() {
                rec.begin_batch();
            }
            let outcome = st
                .purchases
                .clear_pin_failures(caller.account, now, &mut |e| {
                    rec.record(EventRef::Purchase(e))
                })
                .map_err(pin_error)
                .and_then(|()| start_topup(st, rec, caller.account, amount, now));
            if let Some(f) = &fresh {
                let kept = outcome.as_ref().ok().map(|t| {
                    let bytes = serde_json::to_vec(&answer(t)).expect("a JSON value encodes");
                    f.keep(st, &app.master_key, StatusCode::ACCEPTED, &bytes, now)
                });
                rec.end_batch(kept);
            }
            outcome
        })
        .await??;
    app.purchase_started();
    Ok(json(StatusCode::ACCEPTED, &answer(&topup)))
}

/// Creates the waiting top-up and logs it: the one place a top-up begins.
fn start_topup(
    st: &crate::app::State,
    rec: &mut crate::app::Recorder<'_>,
    account: AccountId,
    amount: u64,
    now: Millis,
) -> Result<TopUp, ApiError> {
    st.topups
        .start(account, amount, now, &mut |e| {
            rec.record(EventRef::TopUp(e))
        })
        .map_err(topup_error)
}

/// `GET /api/user/credits` → `{"balance", "topups": [...]}`, the newest
/// [`MAX_SHOWN`] top-ups, newest first.
pub fn list(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let st = http.app.state();
    let topups: Vec<Value> = st
        .topups
        .of_account(caller.account, MAX_SHOWN)
        .iter()
        .map(topup_json)
        .collect();
    let balance = st.accounts.balance(caller.account).unwrap_or(0);
    Ok(json(
        StatusCode::OK,
        &json!({"balance": balance, "topups": topups}),
    ))
}
