from parlay_orders.main import main

main()
