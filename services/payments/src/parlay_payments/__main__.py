from parlay_payments.main import main

main()
