"""Tortoise models, one module per domain; no behaviour beyond small properties."""
from api.models.draws import DrawGame, DrawPlay, DrawPrize
from api.models.earning import (
    EarnBreakdown,
    EarnCounter,
    EarnRule,
    EarnTask,
    JobLease,
    MallEvent,
    MemberBehaviour,
    MemberInvite,
    PendingPoints,
    TaskClaim,
)
from api.models.installation import Installation
from api.models.integrations import IntegrationKey, IntegrationKeyMerchant, IntegrationNonce
from api.models.ledger import IdempotencyRecord, PointsAccount, PointsEntry, PointsLot, PointsLotMove
from api.models.mall import (
    FlashSale,
    MallOrder,
    MerchantStaff,
    Payment,
    PaymentRefund,
    PointsHold,
    Product,
    Voucher,
)
from api.models.members import GrowthEntry, Member, SmsCode, SmsMessage, Tier, TierChange
from api.models.merchant_assistant import MerchantVoucherProposal
from api.models.merchants import Merchant
from api.models.operators import AuditLog, Operator, PointsAdjustApproval
from api.models.parking import CarPark, CarParkKey, ParkingSession, Vehicle
from api.models.purchases import Purchase, PurchaseRefund, TillPayment
from api.models.reach import (
    Campaign,
    CampaignMember,
    MemberTag,
    MemberWechat,
    Notification,
    NotificationPreference,
    Segment,
)
from api.models.throttle import RateCounter

__all__ = [
    "AuditLog", "CarPark", "CarParkKey", "DrawGame", "DrawPlay", "DrawPrize", "ParkingSession", "Vehicle", "FlashSale", "MallOrder", "MerchantStaff", "Payment", "PaymentRefund", "PointsHold", "Product",
    "Voucher", "GrowthEntry", "IdempotencyRecord", "IntegrationKey", "IntegrationKeyMerchant",
    "IntegrationNonce", "Member", "Merchant", "Operator", "PointsAccount", "PointsEntry", "PointsLot",
    "PointsAdjustApproval", "PointsLotMove", "Purchase", "PurchaseRefund", "SmsCode", "SmsMessage", "Tier",
    "TierChange", "TillPayment", "RateCounter", "Installation",
    # earning (issue 3)
    "EarnBreakdown", "EarnCounter", "EarnRule", "EarnTask", "JobLease", "MallEvent", "MemberBehaviour",
    "MemberInvite", "PendingPoints", "TaskClaim",
    # reach (issue 13)
    "Campaign", "CampaignMember", "MemberTag", "MemberWechat", "Notification", "NotificationPreference", "Segment",
    # merchant assistant (issue 12)
    "MerchantVoucherProposal",
]
